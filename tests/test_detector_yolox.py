"""The real YOLOX-Nano model on real photos, against boxes measured once and checked by eye.

The model is fetched through `fetch_model` from the local cache (`../shared/models`
beside the repository, as on CI) into a temporary model directory, so the fetch
path is exercised too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.core.config import ModelConfig
from edge_agent.core.geometry import box_iou, letterbox_tensor
from edge_agent.pipeline.detect.models import COCO80_LABELS, load_manifest, resolve_model, sha256_of
from edge_agent.pipeline.detect.onnx import OnnxDetector
from edge_agent.tools.models import fetch_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
IMAGES = SHARED / "fixtures" / "images"
REFERENCE = json.loads((Path(__file__).parent / "data" / "yolox_reference_boxes.json").read_text())

MIN_IOU = 0.7
# Same model and weights everywhere; the slack covers other CPUs' float rounding and
# other OpenCV builds' resize, not a different model.
SCORE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnnxDetector]:
    model_dir = tmp_path_factory.mktemp("models")
    path = fetch_model("yolox-nano", model_dir=model_dir, cache_dir=SHARED / "models")
    assert path == model_dir / "yolox_nano.onnx"
    assert sha256_of(path) == load_manifest("yolox-nano").sha256
    cfg = ModelConfig(
        name="yolox-nano", min_score=REFERENCE["min_score"], nms_iou=REFERENCE["nms_iou"], threads=2
    )
    yield OnnxDetector(resolve_model(cfg, model_dir=model_dir), cfg)


def _cases() -> list[Any]:
    return [
        pytest.param(image, ref, id=f"{image.removesuffix('.jpg')}-{ref['label']}-{i}")
        for image, refs in REFERENCE["images"].items()
        for i, ref in enumerate(refs)
    ]


@pytest.mark.parametrize(("image", "ref"), _cases())
def test_reference_object_is_found(detector: OnnxDetector, image: str, ref: dict[str, Any]) -> None:
    frame = cv2.imread(str(IMAGES / image))
    assert frame is not None, f"cannot read {IMAGES / image}"
    dets = detector.detect(frame)
    labels = np.array([detector.labels[c] for c in dets.class_id])
    same_label = dets[labels == ref["label"]]
    assert len(same_label), f"no {ref['label']} found in {image}; found {sorted(set(labels))}"
    ious = box_iou(np.array([ref["xyxy"]], np.float32), same_label.xyxy)[0]
    best = int(ious.argmax())
    assert ious[best] >= MIN_IOU, f"best {ref['label']} box {same_label.xyxy[best]} has IoU {ious[best]:.2f}"
    assert abs(float(same_label.score[best]) - ref["score"]) <= SCORE_TOLERANCE


def test_detections_are_in_frame_pixels_and_sorted(detector: OnnxDetector) -> None:
    frame = cv2.imread(str(IMAGES / "coco_000000009891.jpg"))
    dets = detector.detect(frame)
    h, w = frame.shape[:2]
    assert len(dets) >= 5
    assert (dets.xyxy[:, [0, 2]] >= 0).all() and (dets.xyxy[:, [0, 2]] <= w).all()
    assert (dets.xyxy[:, [1, 3]] >= 0).all() and (dets.xyxy[:, [1, 3]] <= h).all()
    assert (dets.xyxy[:, 2] > dets.xyxy[:, 0]).all() and (dets.xyxy[:, 3] > dets.xyxy[:, 1]).all()
    assert (np.diff(dets.score) <= 0).all()
    assert (dets.score >= REFERENCE["min_score"]).all()


def test_detector_describes_itself(detector: OnnxDetector) -> None:
    assert detector.labels == COCO80_LABELS
    assert detector.decoder == "yolox"
    assert (detector.input_width, detector.input_height) == (416, 416)
    assert detector.input_name == "images"
    assert detector.providers == ["CPUExecutionProvider"]
    detector.detect(np.full((576, 768, 3), 114, np.uint8))
    timing = detector.last_timing
    assert timing.inference_ms > 0 and timing.preprocess_ms > 0 and timing.postprocess_ms > 0
    assert timing.total_ms == pytest.approx(
        timing.preprocess_ms + timing.inference_ms + timing.postprocess_ms
    )


def test_empty_scene_gives_no_detections(detector: OnnxDetector) -> None:
    assert len(detector.detect(np.full((480, 640, 3), 114, np.uint8))) == 0


@pytest.mark.parametrize("rgb", [False, True], ids=["bgr", "rgb"])
@pytest.mark.parametrize("shape", [(576, 768), (768, 576), (416, 416), (100, 1000)], ids=str)
def test_the_input_tensor_is_the_padded_picture_cast_exactly(shape: tuple[int, int], rgb: bool) -> None:
    """The plane-by-plane tensor holds the very numbers of a padded uint8 canvas transposed
    to NCHW and cast (golden replays depend on every one of them)."""
    frame = np.random.default_rng(7).integers(0, 256, (*shape, 3), dtype=np.uint8)
    tensor, box = letterbox_tensor(frame, 416, 416, 114, rgb)
    new_w, new_h = round(shape[1] * box.scale), round(shape[0] * box.scale)
    canvas = np.full((416, 416, 3), 114, np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if rgb:
        canvas = canvas[:, :, ::-1]
    expected = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
    assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
    assert np.array_equal(tensor, expected)


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 1), (4, 4, 4)], ids=str)
def test_a_picture_without_three_colour_planes_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="colour picture"):
        letterbox_tensor(np.zeros(shape, np.uint8), 416, 416)


def test_bare_session_matches_detector_input(detector: OnnxDetector) -> None:
    # The bench compares detect() to session.run on the detector's own tensor.
    frame = cv2.imread(str(IMAGES / "coco_000000007088.jpg"))
    tensor, box = detector.preprocess(frame)
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32 and tensor.flags.c_contiguous
    assert tensor.max() <= 255 and tensor[0, :, -1, -1].tolist() == [114, 114, 114]
    # BGR order kept: channel 0 of the tensor is the frame's blue channel.
    canvas_b = cv2.resize(frame, (round(frame.shape[1] * box.scale), 416))[:, :, 0]
    assert np.abs(tensor[0, 0, :, : canvas_b.shape[1]] - canvas_b).max() <= 1
    (out,) = detector.session.run(None, {detector.input_name: tensor})
    assert out.shape == (1, 3549, 85)
