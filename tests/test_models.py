"""Manifests, fetching with sha256 checks, `models list` and resolving `model:` config."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from edge_agent.core.config import ModelConfig
from edge_agent.pipeline.detect.models import (
    COCO80_LABELS,
    ModelError,
    default_labels,
    known_models,
    load_manifest,
    manifest_dir,
    manifest_dirs,
    model_dir,
    packaged_manifest_dir,
    parse_names,
    resolve_model,
)
from edge_agent.tools.models import fetch_model, list_models

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = b"pretend weights\n" * 64


def write_manifest(folder: Path, stem: str, payload: bytes, **extra: object) -> dict[str, object]:
    """`<stem>.yaml` for a model called `stem` whose file holds `payload`; `extra` overrides keys."""
    data: dict[str, object] = {
        "name": stem,
        "file": f"{stem}.onnx",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "url": f"https://models.invalid/{stem}.onnx",
        "licence": "Apache-2.0",
        "source": "made by the test",
        "input_width": 320,
        "input_height": 256,
        "decoder": "yolov8",
        "labels": ["bag", "cart"],
        **extra,
    }
    (folder / f"{stem}.yaml").write_text(yaml.safe_dump(data))
    return data


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """(manifests, cache, model dir) in tmp_path, with the env pointing at them."""
    manifests, cache, models = tmp_path / "manifests", tmp_path / "cache", tmp_path / "models"
    manifests.mkdir()
    cache.mkdir()
    write_manifest(manifests, "tiny", PAYLOAD)
    write_manifest(manifests, "other", b"other weights")
    (cache / "tiny.onnx").write_bytes(PAYLOAD)
    monkeypatch.setenv("EDGE_AGENT_MANIFEST_DIR", str(manifests))
    monkeypatch.setenv("EDGE_AGENT_MODEL_CACHE", str(cache))
    monkeypatch.setenv("EDGE_AGENT_MODEL_DIR", str(models))
    return manifests, cache, models


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- directories and manifests ----------------------------------------------------


def test_default_directories_are_the_repo_models_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("EDGE_AGENT_MANIFEST_DIR", "EDGE_AGENT_MODEL_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert manifest_dir() == REPO / "models"
    assert model_dir() == REPO / "models"


def test_manifests_ship_inside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """edge_agent/data/models is the repository's models/: one copy, found by importlib.resources."""
    for var in ("EDGE_AGENT_MANIFEST_DIR", "EDGE_AGENT_MODEL_DIR"):
        monkeypatch.delenv(var, raising=False)
    alias = REPO / "edge_agent" / "data" / "models"
    assert alias.is_symlink() and alias.resolve() == REPO / "models"
    assert packaged_manifest_dir() == REPO / "models"
    assert manifest_dirs() == [REPO / "models"]  # model dir and packaged manifests are one folder here


def test_installed_box_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Outside a checkout: /var/lib/edge-agent/models where that state directory exists, else the
    user's cache; manifests made there (int8, export) are found before the packaged ones."""
    from edge_agent.pipeline.detect import models as models_module

    for var in ("EDGE_AGENT_MANIFEST_DIR", "EDGE_AGENT_MODEL_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(models_module, "source_checkout", lambda: None)
    state = tmp_path / "var-lib-edge-agent"
    monkeypatch.setattr(models_module, "SYSTEM_STATE_DIR", state)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert model_dir() == tmp_path / "home" / ".cache" / "edge-agent" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_dir() == tmp_path / "xdg" / "edge-agent" / "models"
    state.mkdir()
    assert model_dir() == state / "models"
    assert manifest_dir() == state / "models"
    assert manifest_dirs() == [state / "models", REPO / "models"]
    assert known_models() == ["yolox-nano"]
    (state / "models").mkdir()
    write_manifest(state / "models", "tiny", PAYLOAD)
    assert known_models() == ["tiny", "yolox-nano"]
    assert load_manifest("tiny").labels == ("bag", "cart")
    assert load_manifest("yolox-nano").file == "yolox_nano.onnx"


def test_models_list_without_manifests_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.tools.cli import main

    monkeypatch.setenv("EDGE_AGENT_MANIFEST_DIR", str(tmp_path))
    assert main(["models", "list"]) == 1
    assert f"no model manifests in {tmp_path}" in capsys.readouterr().err


def test_directories_follow_the_environment(dirs: tuple[Path, Path, Path]) -> None:
    manifests, _, models = dirs
    assert manifest_dir() == manifests
    assert model_dir() == models


def test_shipped_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_AGENT_MANIFEST_DIR", raising=False)
    m = load_manifest("yolox-nano")
    assert (m.file, m.decoder, m.input_width, m.input_height) == ("yolox_nano.onnx", "yolox", 416, 416)
    assert (m.input_channels, m.input_range, m.letterbox_pad) == ("bgr", "0-255", 114)
    assert m.sha256 == "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
    assert m.url.startswith("https://") and m.licence == "Apache-2.0"
    assert m.labels == COCO80_LABELS
    # Standard COCO spellings, not darknet's.
    for standard, darknet in [("motorcycle", "motorbike"), ("couch", "sofa"), ("tv", "tvmonitor")]:
        assert standard in m.labels and darknet not in m.labels


def test_unknown_manifest_lists_known_ones(dirs: tuple[Path, Path, Path]) -> None:
    with pytest.raises(ModelError, match=r"unknown model 'yolo9000'.*known models: other, tiny"):
        load_manifest("yolo9000")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sha256": "abc"}, r"sha256"),
        ({"decoder": "ssd"}, r"decoder"),
        ({"colour": "blue"}, r"colour"),
        ({"name": "someone-else"}, r"its name is 'someone-else'"),
    ],
)
def test_bad_manifest_is_a_model_error(
    dirs: tuple[Path, Path, Path], extra: dict[str, object], message: str
) -> None:
    write_manifest(dirs[0], "broken", b"x", **extra)
    with pytest.raises(ModelError, match=rf"bad manifest .*broken\.yaml.*{message}"):
        load_manifest("broken")


# --- fetch -----------------------------------------------------------------------


def test_fetch_copies_from_the_cache(dirs: tuple[Path, Path, Path]) -> None:
    _, _, models = dirs
    path = fetch_model("tiny")
    assert path == models / "tiny.onnx"
    assert path.read_bytes() == PAYLOAD
    assert leftovers(models) == ["tiny.onnx"]


def test_fetch_arguments_override_the_environment(dirs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    other_cache, other_models = tmp_path / "c2", tmp_path / "m2"
    other_cache.mkdir()
    (other_cache / "tiny.onnx").write_bytes(PAYLOAD)
    (dirs[1] / "tiny.onnx").unlink()
    assert fetch_model("tiny", model_dir=other_models, cache_dir=other_cache) == other_models / "tiny.onnx"
    assert leftovers(dirs[2]) == []


def test_second_fetch_keeps_the_file(dirs: tuple[Path, Path, Path]) -> None:
    _, cache, _ = dirs
    first = fetch_model("tiny")
    stat = first.stat()
    (cache / "tiny.onnx").unlink()  # a second copy would now have to download and fail
    second = fetch_model("tiny")
    assert second == first
    assert (second.stat().st_ino, second.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_sha256_mismatch_names_both_hashes_and_leaves_nothing(dirs: tuple[Path, Path, Path]) -> None:
    _, cache, models = dirs
    (cache / "tiny.onnx").write_bytes(b"tampered")
    expected = hashlib.sha256(PAYLOAD).hexdigest()
    got = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(ModelError, match=rf"sha256 mismatch.*expected {expected}, got {got}"):
        fetch_model("tiny")
    assert leftovers(models) == []


def test_bad_file_in_model_dir_is_replaced(dirs: tuple[Path, Path, Path]) -> None:
    _, _, models = dirs
    models.mkdir()
    (models / "tiny.onnx").write_bytes(b"truncated")
    assert fetch_model("tiny").read_bytes() == PAYLOAD


def test_bad_file_in_model_dir_is_removed_when_fetch_fails(dirs: tuple[Path, Path, Path]) -> None:
    _, cache, models = dirs
    models.mkdir()
    (models / "tiny.onnx").write_bytes(b"truncated")
    (cache / "tiny.onnx").write_bytes(b"also bad")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        fetch_model("tiny")
    assert leftovers(models) == []


def test_fetch_downloads_when_the_cache_lacks_the_file(dirs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    manifests, _, models = dirs
    mirror = tmp_path / "mirror.onnx"
    mirror.write_bytes(b"downloaded weights")
    write_manifest(manifests, "remote", b"downloaded weights", url=mirror.as_uri())
    assert fetch_model("remote").read_bytes() == b"downloaded weights"
    assert leftovers(models) == ["remote.onnx"]


def test_failed_download_is_a_model_error(dirs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    manifests, _, models = dirs
    write_manifest(manifests, "remote", b"w", url=(tmp_path / "missing.onnx").as_uri())
    with pytest.raises(ModelError, match=r"cannot fetch model remote from file://.*missing\.onnx") as info:
        fetch_model("remote")
    assert "\n" not in str(info.value)
    assert leftovers(models) == []


def test_unsupported_url_scheme_is_refused(dirs: tuple[Path, Path, Path]) -> None:
    write_manifest(dirs[0], "ftp", b"w", url="ftp://example.invalid/ftp.onnx")
    with pytest.raises(ModelError, match="only https, http, file URLs"):
        fetch_model("ftp")
    assert leftovers(dirs[2]) == []


# --- list ------------------------------------------------------------------------


def test_list_models_reports_installed_and_missing(dirs: tuple[Path, Path, Path]) -> None:
    _, _, models = dirs
    fetch_model("tiny")
    statuses = {s.name: s for s in list_models()}
    assert sorted(statuses) == ["other", "tiny"]
    tiny, other = statuses["tiny"], statuses["other"]
    assert (tiny.installed, tiny.sha256_ok, tiny.size_bytes, tiny.path) == (
        True,
        True,
        len(PAYLOAD),
        models / "tiny.onnx",
    )
    assert (other.installed, other.sha256_ok, other.size_bytes) == (False, None, None)
    (models / "tiny.onnx").write_bytes(b"corrupted")
    assert {s.name: s.sha256_ok for s in list_models()}["tiny"] is False


# --- resolve ---------------------------------------------------------------------


def test_resolve_manifest_model(dirs: tuple[Path, Path, Path]) -> None:
    fetch_model("tiny")
    resolved = resolve_model(ModelConfig(name="tiny"))
    assert resolved.path == dirs[2] / "tiny.onnx"
    assert resolved.labels == ("bag", "cart")
    assert resolved.decoder == "yolov8"
    assert resolved.input_size == (320, 256)


def test_resolve_decoder_override(dirs: tuple[Path, Path, Path]) -> None:
    fetch_model("tiny")
    assert resolve_model(ModelConfig(name="tiny", decoder="yolov5")).decoder == "yolov5"


def test_resolve_missing_file_says_how_to_fetch(dirs: tuple[Path, Path, Path]) -> None:
    with pytest.raises(ModelError, match=r"tiny\.onnx is missing: run `edge-agent models fetch tiny`"):
        resolve_model(ModelConfig(name="tiny"))


def test_resolve_needs_name_or_path() -> None:
    with pytest.raises(ModelError, match="set either name"):
        resolve_model(ModelConfig(name=None))


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("{0: 'person', 1: 'bicycle'}", ("person", "bicycle")),
        ("{1: 'b', 0: 'a'}", ("a", "b")),
        ("['x', 'y', 'z']", ("x", "y", "z")),
        ("{0: 'a', 2: 'c'}", None),
        ("__import__('os').system('true')", None),
        ("not python", None),
        ("42", None),
    ],
)
def test_parse_names(text: str, labels: tuple[str, ...] | None) -> None:
    assert parse_names(text) == labels


@pytest.mark.parametrize(
    ("classes", "labels"),
    [(80, COCO80_LABELS), (2, ("class0", "class1")), (1, ("class0",))],
)
def test_default_labels(classes: int, labels: tuple[str, ...]) -> None:
    assert default_labels(classes) == labels
