"""int8 quantization of the real YOLOX-Nano: it loads like any model, finds people, agrees with fp32.

Calibration uses 16 frames (the 10 shared photos and 6 walkway-a frames, see
`default_calibration_frames`) to keep the module near half a minute on two cores.
Agreement is measured on walkway-b, which calibration never sees.

Threshold: with percentile calibration the int8 model finds 0.86 of the fp32
detections (score >= 0.35, same class, IoU >= 0.5) on the 99 walkway-b frames
with 16 calibration frames, and 0.82-0.86 with 16-64 frames. MinMax calibration
measured 0.52 on the same frames, so 0.8 catches a broken calibration while
leaving room for other CPUs' rounding. Most misses are detections that int8
scores just below `min_score`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.core.config import ModelConfig
from edge_agent.core.geometry import box_iou
from edge_agent.core.types import Detections
from edge_agent.pipeline.detect.models import COCO80_LABELS, load_manifest, resolve_model, sha256_of
from edge_agent.pipeline.detect.onnx import OnnxDetector, load_detector
from edge_agent.tools import quantize
from edge_agent.tools.models import fetch_model
from edge_agent.tools.quantize import (
    QuantizeResult,
    compare_models,
    evaluation_frames,
    matched_count,
    quantize_model,
)
from tests.conftest import REPO, SHARED

IMAGES = SHARED / "fixtures" / "images"
REFERENCE = json.loads((Path(__file__).parent / "data" / "yolox_reference_boxes.json").read_text())
CALIBRATION_FRAMES = 16
MIN_AGREEMENT = 0.8
MIN_PERSON_IOU = 0.5
# The clear people of the reference photos (fp32 score >= 0.85). int8 loses weaker ones
# on these varied photos (e.g. the 0.80 person in coco_000000001268 drops below 0.35),
# see the module docstring of edge_agent.tools.quantize.
CLEAR_PERSON_SCORE = 0.85


@pytest.fixture(scope="module")
def quantized(model_ready: Path, tmp_path_factory: pytest.TempPathFactory) -> QuantizeResult:
    out = tmp_path_factory.mktemp("int8")
    return quantize_model(
        "yolox-nano",
        frames=CALIBRATION_FRAMES,
        out_path=out / "yolox-nano-int8.onnx",
        manifest_directory=out,
    )


@pytest.fixture(scope="module")
def int8_detector(quantized: QuantizeResult) -> OnnxDetector:
    return load_detector(ModelConfig(name=None, path=str(quantized.int8_path)))


def test_manifest_describes_the_int8_file(quantized: QuantizeResult) -> None:
    manifest = load_manifest("yolox-nano-int8", directory=quantized.manifest_path.parent)
    fp32 = load_manifest("yolox-nano")
    assert manifest.file == "yolox-nano-int8.onnx"
    assert manifest.sha256 == sha256_of(quantized.int8_path)
    assert manifest.labels == fp32.labels
    assert manifest.decoder == "yolox"
    assert (manifest.input_width, manifest.input_height) == (416, 416)
    assert (manifest.input_channels, manifest.input_range, manifest.letterbox_pad) == ("bgr", "0-255", 114)
    assert "edge-agent models quantize" in manifest.source and "yolox_nano.onnx" in manifest.source
    assert manifest.url == quantized.int8_path.resolve().as_uri()
    assert quantized.calibration_frames == CALIBRATION_FRAMES


def test_int8_loads_by_name(quantized: QuantizeResult, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = quantized.int8_path.parent
    monkeypatch.setenv("EDGE_AGENT_MANIFEST_DIR", str(folder))
    monkeypatch.setenv("EDGE_AGENT_MODEL_DIR", str(folder))
    # The file is already in place with the right sha256: fetch keeps it.
    assert fetch_model("yolox-nano-int8") == quantized.int8_path
    detector = load_detector(ModelConfig(name="yolox-nano-int8"))
    assert detector.model.name == "yolox-nano-int8"
    assert detector.labels == COCO80_LABELS
    assert detector.decoder == "yolox"


def test_int8_loads_by_path_with_labels_from_metadata(int8_detector: OnnxDetector) -> None:
    assert int8_detector.labels == COCO80_LABELS
    assert int8_detector.decoder == "yolox"
    assert (int8_detector.input_width, int8_detector.input_height) == (416, 416)


def test_int8_finds_the_clear_reference_people(int8_detector: OnnxDetector) -> None:
    person = COCO80_LABELS.index("person")
    checked = 0
    for image, refs in REFERENCE["images"].items():
        frame = cv2.imread(str(IMAGES / image))
        assert frame is not None, f"cannot read {IMAGES / image}"
        dets = int8_detector.detect(frame)
        people = dets[dets.class_id == person]
        for ref in refs:
            if ref["label"] != "person" or ref["score"] < CLEAR_PERSON_SCORE:
                continue
            checked += 1
            assert len(people), f"int8 finds no person in {image}"
            best = float(box_iou(np.array([ref["xyxy"]], np.float32), people.xyxy)[0].max())
            assert best >= MIN_PERSON_IOU, f"best int8 person box in {image} has IoU {best:.2f}"
    assert checked == 2


def test_int8_agrees_with_fp32_on_held_out_frames(quantized: QuantizeResult) -> None:
    fp32_cfg = ModelConfig(name="yolox-nano")
    fp32 = OnnxDetector(resolve_model(fp32_cfg, model_dir=quantized.fp32_path.parent), fp32_cfg)
    int8_cfg = ModelConfig(name=None, path=str(quantized.int8_path))
    int8 = OnnxDetector(resolve_model(int8_cfg), int8_cfg)
    frames = evaluation_frames()
    assert len(frames) >= 90
    result = compare_models(fp32, int8, frames)
    assert result.frames == len(frames)
    assert result.fp32_detections > 5 * len(frames)  # walkway-b is busy: the metric has material
    assert result.agreement >= MIN_AGREEMENT, result
    assert result.fp32_ms > 0 and result.int8_ms > 0


def _dets(rows: list[tuple[float, float, float, float, int]]) -> Detections:
    xyxy = np.array([r[:4] for r in rows], np.float32).reshape(-1, 4)
    score = np.linspace(0.9, 0.5, len(rows)).astype(np.float32)
    return Detections(xyxy, score, np.array([r[4] for r in rows], np.int32))


@pytest.mark.parametrize(
    ("reference", "candidate", "expected"),
    [
        ([(0, 0, 10, 10, 0)], [(0, 0, 10, 10, 0)], 1),
        ([(0, 0, 10, 10, 0)], [(0, 0, 10, 10, 1)], 0),  # other class
        ([(0, 0, 10, 10, 0)], [(0, 0, 10, 4, 0)], 0),  # IoU 0.4
        ([(0, 0, 10, 10, 0)], [(0, 0, 10, 6, 0)], 1),  # IoU 0.6
        ([(0, 0, 10, 10, 0), (1, 0, 11, 10, 0)], [(0, 0, 10, 10, 0)], 1),  # one-to-one
        ([(0, 0, 10, 10, 0), (20, 20, 30, 30, 2)], [(20, 20, 30, 30, 2), (0, 0, 10, 10, 0)], 2),
        ([], [(0, 0, 10, 10, 0)], 0),
        ([(0, 0, 10, 10, 0)], [], 0),
    ],
)
def test_matched_count(
    reference: list[tuple[float, float, float, float, int]],
    candidate: list[tuple[float, float, float, float, int]],
    expected: int,
) -> None:
    assert matched_count(_dets(reference), _dets(candidate)) == expected


def test_calibration_from_a_folder_and_errors(tmp_path: Path) -> None:
    for i, name in enumerate(sorted(IMAGES.glob("*.jpg"))[:3]):
        shutil.copy(name, tmp_path / f"{i}.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    assert len(quantize.calibration_frames(tmp_path, 2)) == 2
    assert len(quantize.calibration_frames(REPO / "fixtures" / "walkway-a.mp4", 10)) == 10
    with pytest.raises(quantize.ModelError, match="does not exist"):
        quantize.calibration_frames(tmp_path / "missing.mp4", 4)
    with pytest.raises(ValueError, match="frames"):
        quantize_model("yolox-nano", frames=0)


def test_cli_quantizes_and_reports(
    model_ready: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copy(REPO / "models" / "yolox-nano.yaml", tmp_path)
    shutil.copy(model_ready, tmp_path)
    monkeypatch.setenv("EDGE_AGENT_MANIFEST_DIR", str(tmp_path))
    monkeypatch.setenv("EDGE_AGENT_MODEL_DIR", str(tmp_path))
    # Only a few frames: this checks the wiring and the report, the tests above check the model.
    monkeypatch.setattr(quantize, "evaluation_frames", lambda: evaluation_frames(8))
    parser = argparse.ArgumentParser()
    quantize.add_arguments(parser)
    args = parser.parse_args(["yolox-nano", "--calibration", str(IMAGES), "--frames", "4"])
    assert quantize.run(args) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "yolox-nano-int8.onnx").is_file() and (tmp_path / "yolox-nano-int8.yaml").is_file()
    assert "model: {name: yolox-nano-int8}" in out
    assert "fp32" in out and "int8" in out and "agreement:" in out


def test_cli_reports_an_unknown_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    quantize.add_arguments(parser)
    assert quantize.run(parser.parse_args(["no-such-model"])) == 1
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
