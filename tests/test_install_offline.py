"""install.sh on a box without internet: the wheels and the model come on a stick.

Where this machine allows it (root and `unshare -n`), the installer runs in a network
namespace of its own with no network at all; elsewhere pip is barred from every index.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

INSTALL = REPO / "deploy" / "install.sh"


def no_network_prefix() -> list[str]:
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return ["unshare", "-n"] if probe.returncode == 0 else []


def offline_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("EDGE_AGENT_", "PIP_")) and k != "PYTHONPATH"
    }
    # nothing but the wheel folder: no pip configuration of this machine, no proxy that works
    return env | {
        "PIP_CONFIG_FILE": os.devnull,
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }


@pytest.fixture(scope="module")
def stick(tmp_path_factory: pytest.TempPathFactory, model_ready: Path) -> Path:
    """What an installer brings: the locked wheels and the model file."""
    stick = tmp_path_factory.mktemp("stick")
    locks = [
        arg for lock in ("build", "runtime") for arg in ("-r", str(REPO / "requirements" / f"{lock}.lock"))
    ]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", *locks,
         "-d", str(stick / "wheels")],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    shutil.copy(model_ready, stick / "yolox_nano.onnx")
    return stick


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*no_network_prefix(), "bash", str(INSTALL), "--prefix", str(root), "--no-apt", *args],
        capture_output=True, text=True, timeout=600, env=offline_env(), check=False,
    )  # fmt: skip


def test_install_without_internet(tmp_path: Path, stick: Path) -> None:
    root = tmp_path / "root"
    etc = root / "etc" / "edge-agent"
    etc.mkdir(parents=True)
    # the secrets the config refers to, put there first (install.sh keeps an existing env file)
    (etc / "env").write_text("EDGE_MQTT_USER=edge-01\nCAM1_PASS=hunter2\n")

    # the stick lacks the model: the download fails, nothing else stops, the end says how
    first = install(root, "--wheels", str(stick / "wheels"), "--no-doctor")
    out = first.stdout + first.stderr
    assert first.returncode == 1, out
    assert "the model could not be fetched (no internet here?)" in out
    assert "EDGE_AGENT_MODEL_CACHE" in out and "--model /path/to/the-model.onnx" in out
    assert "/venv/lib/" not in out.split("models fetch")[-1]  # no hint to a folder inside the venv
    assert (etc / "config.yaml").is_file() and (root / "etc/systemd/system/edge-agent.service").is_file()
    assert "==> check: edge-agent validate" in out and "yolox_nano.onnx is missing" in out

    # again with the model file from the stick: installed, validated, doctor run
    done = install(root, "--wheels", str(stick / "wheels"), "--model", str(stick / "yolox_nano.onnx"))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "is the model yolox-nano (its sha256 matches the manifest)" in out
    model = root / "var/lib/edge-agent/models/yolox_nano.onnx"
    assert model.read_bytes() == (stick / "yolox_nano.onnx").read_bytes()
    assert stat.S_IMODE(model.stat().st_mode) == 0o644
    assert stat.S_IMODE((etc / "env").stat().st_mode) == 0o600
    assert f"{etc / 'config.yaml'}: OK (1 cameras, " in out
    assert "==> check: edge-agent doctor" in out and "clock sync:" in out
    assert "Traceback" not in out


def test_a_custom_model_file_becomes_model_path_with_its_sha256(tmp_path: Path, model_ready: Path) -> None:
    import onnx

    custom = tmp_path / "helmets.onnx"
    proto = onnx.load(str(model_ready))
    proto.doc_string = "a village's own model"
    onnx.save(proto, str(custom))
    digest = hashlib.sha256(custom.read_bytes()).hexdigest()
    root = tmp_path / "root"
    done = install(root, "--no-venv", "--model", str(custom))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "var/lib/edge-agent/models/helmets.onnx").read_bytes() == custom.read_bytes()
    config = (root / "etc/edge-agent/config.yaml").read_text()
    assert f"  path: /var/lib/edge-agent/models/helmets.onnx\n  sha256: {digest}\n" in config
    assert "name: yolox-nano" not in config
