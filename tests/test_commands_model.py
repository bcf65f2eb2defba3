"""`model.sha256`: a custom model file is checked at every load, as a manifest's is."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.core.config import ModelConfig
from edge_agent.pipeline.detect.models import ModelError, resolve_model
from tests.conftest import REPO

WALKWAY = (
    (REPO / "fixtures" / "walkway.yaml")
    .read_text()
    .replace("url: fixtures/walkway-a.mp4", f"url: {REPO}/fixtures/walkway-a.mp4")
)


@pytest.fixture
def custom(tmp_path: Path, model_ready: Path) -> tuple[Path, str]:
    path = tmp_path / "custom.onnx"
    shutil.copy(model_ready, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_custom_model_with_its_sha256_loads_and_a_flipped_one_does_not(custom: tuple[Path, str]) -> None:
    path, digest = custom
    assert resolve_model(ModelConfig(name=None, path=str(path), sha256=digest)).path == path
    flip_a_byte(path)
    with pytest.raises(ModelError, match=f"has sha256 [0-9a-f]{{64}} but model.sha256 says {digest}"):
        resolve_model(ModelConfig(name=None, path=str(path), sha256=digest))
    # without model.sha256 nothing can tell: it loads (the reason to set it)
    assert resolve_model(ModelConfig(name=None, path=str(path))).path == path


def test_validate_fails_on_flipped_weights(custom: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = custom
    config = tmp_path / "config.yaml"
    model = "model: {name: yolox-nano, min_score: 0.35, threads: 1}"
    assert model in WALKWAY
    config.write_text(WALKWAY.replace(model, f"model: {{name: null, path: {path}, sha256: {digest}}}"))

    def validate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge_agent", "validate", str(config)],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    ok = validate()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    flip_a_byte(path)
    bad = validate()
    assert bad.returncode == 1
    assert f"model: model file {path} has sha256" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


def test_sha256_belongs_to_a_custom_file_only() -> None:
    with pytest.raises(ModelError, match=r"model\.sha256 is for model\.path"):
        resolve_model(ModelConfig(sha256="0" * 64))
