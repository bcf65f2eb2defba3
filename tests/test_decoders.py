"""Decoders and NMS as pure functions, and end to end through OnnxDetector on tiny ONNX graphs.

The graphs output a constant of known values (the `images` input is consumed
as `ReduceSum(images) * 0` so the graph is valid), which pins down exactly
which boxes, classes and scores come out after decode, NMS and letterbox undo.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.core.config import ModelConfig
from edge_agent.pipeline.detect.decoders import (
    class_count,
    decode_yolov5,
    decode_yolov8,
    decode_yolox,
    infer_decoder,
    nms,
    yolox_grid_count,
)
from edge_agent.pipeline.detect.models import COCO80_LABELS, ModelError
from edge_agent.pipeline.detect.onnx import OnnxDetector, load_detector, select_providers

INPUT = 64  # tiny graphs take a 64x64 input: YOLOX grid 8x8 + 4x4 + 2x2 = 84 rows


def make_graph(path: Path, output: np.ndarray, names: str | None = None, input_size: int = INPUT) -> Path:
    """An ONNX model with input `images` [1, 3, S, S] whose output is always `output`."""
    const = numpy_helper.from_array(output.astype(np.float32), "const_out")
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    nodes = [
        helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["const_out", "nothing"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, input_size, input_size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(output.shape))],
        initializer=[const, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {"names": names})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def yolov8_rows(rows: list[tuple[float, ...]], n: int) -> np.ndarray:
    """[1, 4 + nc, n] from (cx, cy, w, h, cls...) rows, zero-padded to n candidates."""
    arr = np.zeros((n, len(rows[0])), np.float32)
    arr[: len(rows)] = rows
    return arr.T[None].copy()


def yolov5_rows(rows: list[tuple[float, ...]], n: int) -> np.ndarray:
    """[1, n, 5 + nc] from (cx, cy, w, h, obj, cls...) rows, zero-padded to n candidates."""
    arr = np.zeros((n, len(rows[0])), np.float32)
    arr[: len(rows)] = rows
    return arr[None]


def yolox_output(cells: dict[int, tuple[float, ...]], nc: int = 2, size: int = INPUT) -> np.ndarray:
    """[1, grid, 5 + nc] with the given rows set: (dx, dy, log w, log h, obj, cls...)."""
    arr = np.zeros((1, yolox_grid_count(size, size), 5 + nc), np.float32)
    for row, values in cells.items():
        arr[0, row] = values
    return arr


def detections_as_rows(det: OnnxDetector, image: np.ndarray) -> list[tuple[str, float, list[float]]]:
    dets = det.detect(image)
    return [
        (det.labels[c], round(float(s), 4), [round(float(v), 3) for v in box])
        for box, s, c in zip(dets.xyxy, dets.score, dets.class_id, strict=True)
    ]


# --- pure decoders ---------------------------------------------------------------

LN2 = math.log(2.0)
# On a 64x64 input: stride 8 rows 0..63 (8x8), stride 16 rows 64..79 (4x4), stride 32 rows 80..83.
YOLOX_CELLS = {
    19: (0.5, 0.5, LN2, LN2, 0.9, 0.1, 0.8),  # stride 8, cell (3, 2): centre (28, 20), 16 px
    77: (0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.2),  # stride 16, cell (1, 3): centre (16, 48), 16 px
    81: (0.25, 0.75, -LN2, -LN2, 0.6, 0.9, 0.0),  # stride 32, cell (1, 0): centre (40, 24), 16 px
    0: (0.0, 0.0, 0.0, 0.0, 0.9, 0.3, 0.3),  # score 0.27: under the threshold
    1: (0.0, 0.0, 0.0, 0.0, 0.2, 1.0, 1.0),  # objectness 0.2: under the threshold
}


def test_decode_yolox_grid_offsets() -> None:
    boxes, scores, class_ids = decode_yolox(yolox_output(YOLOX_CELLS), INPUT, INPUT, 0.35)
    np.testing.assert_allclose(boxes, [[20, 12, 36, 28], [8, 40, 24, 56], [32, 16, 48, 32]], atol=1e-4)
    assert scores.tolist() == pytest.approx([0.72, 0.5, 0.54], abs=1e-6)
    assert class_ids.tolist() == [1, 0, 0]
    assert boxes.dtype == np.float32 and scores.dtype == np.float32 and class_ids.dtype == np.int32


def test_decode_yolox_is_the_plain_formula_on_a_busy_output() -> None:
    """Every row worked out on its own (grid offsets, best class times objectness) gives what
    the vectorised decode gives, to the bit, on an output with many candidates."""
    rng = np.random.default_rng(11)
    out = rng.random((1, 3549, 85), dtype=np.float32)
    out[0, :, :4] = rng.normal(0, 1, (3549, 4)).astype(np.float32)
    out[0, :, 4] **= 4  # few rows pass on objectness, as in a real frame
    boxes, scores, class_ids = decode_yolox(out, 416, 416, 0.35)
    cells = [(x, y, s) for s in (8, 16, 32) for y in range(416 // s) for x in range(416 // s)]
    want_rows, want_scores, want_ids = [], [], []
    for r, (gx, gy, stride) in enumerate(cells):
        row = out[0, r]
        cls = row[5:] * row[4]
        best = int(np.argmax(cls))
        if row[4] >= 0.35 and cls[best] >= 0.35:
            s = np.float32(stride)
            cx, cy = (row[0] + np.float32(gx)) * s, (row[1] + np.float32(gy)) * s
            w, h = np.exp(row[2]) * s, np.exp(row[3]) * s
            want_rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            want_scores.append(cls[best])
            want_ids.append(best)
    assert len(want_rows) > 50
    assert boxes.tolist() == np.array(want_rows, np.float32).tolist()
    assert scores.tolist() == np.array(want_scores, np.float32).tolist()
    assert class_ids.tolist() == want_ids


@pytest.mark.parametrize(
    ("size", "rows"),
    [((64, 64), 84), ((416, 416), 3549), ((640, 640), 8400), ((640, 384), 5040)],
)
def test_yolox_grid_count(size: tuple[int, int], rows: int) -> None:
    assert yolox_grid_count(*size) == rows


def test_decode_yolox_rejects_wrong_grid() -> None:
    with pytest.raises(ValueError, match=r"\[1, 84, 5 \+ nc\].*got \[1, 83, 7\]"):
        decode_yolox(np.zeros((1, 83, 7), np.float32), INPUT, INPUT, 0.35)


def test_decode_yolov8() -> None:
    out = yolov8_rows([(20, 20, 10, 10, 0.1, 0.9), (5, 5, 2, 2, 0.3, 0.2), (40, 30, 8, 4, 0.6, 0.0)], 9)
    boxes, scores, class_ids = decode_yolov8(out, 0.35)
    assert boxes.tolist() == [[15, 15, 25, 25], [36, 28, 44, 32]]
    assert scores.tolist() == pytest.approx([0.9, 0.6])
    assert class_ids.tolist() == [1, 0]


def test_decode_yolov5_multiplies_objectness() -> None:
    out = yolov5_rows(
        [(20, 20, 10, 10, 0.8, 0.5, 0.9), (5, 5, 2, 2, 0.9, 0.3, 0.2), (1, 1, 2, 2, 0.3, 1, 1)], 10
    )
    boxes, scores, class_ids = decode_yolov5(out, 0.35)
    assert boxes.tolist() == [[15, 15, 25, 25]]
    assert scores.tolist() == pytest.approx([0.72])
    assert class_ids.tolist() == [1]


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((1, 84, 8400), 640, "yolov8"),
        ((1, 6, 8400), 640, "yolov8"),
        ((1, 25200, 85), 640, "yolov5"),
        ((1, 8400, 85), 640, "yolox"),
        ((1, 3549, 85), 416, "yolox"),
        ((1, 3549, 85), 640, "yolov5"),
        ((1, 84, 7), 64, "yolox"),
    ],
)
def test_infer_decoder(shape: tuple[int, ...], size: int, expected: str) -> None:
    assert infer_decoder(shape, size, size) == expected


@pytest.mark.parametrize(
    "shape",
    [(1, 7), (1, 2, 3, 4), (2, 84, 8400), (1, 4, 100), (1, 100, 5), (1, "N", 85)],
)
def test_infer_decoder_rejects_odd_shapes(shape: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match="fits no known decoder"):
        infer_decoder(shape, 640, 640)


@pytest.mark.parametrize(
    ("decoder", "shape", "classes"),
    [("yolov8", (1, 84, 8400), 80), ("yolov5", (1, 25200, 85), 80), ("yolox", (1, 3549, 85), 80)],
)
def test_class_count(decoder: Any, shape: tuple[int, ...], classes: int) -> None:
    assert class_count(decoder, shape, 416, 416) == classes


def test_class_count_rejects_shape_of_other_decoder() -> None:
    with pytest.raises(ValueError, match=r"does not fit the yolox decoder.*\[1, 3549, 5 \+ nc\]"):
        class_count("yolox", (1, 8400, 85), 416, 416)


# --- NMS -------------------------------------------------------------------------

A = [0, 0, 10, 10]
A_SHIFTED = [1, 0, 11, 10]  # IoU with A: 90 / 110 = 0.82
HALF = [5, 0, 15, 10]  # IoU with A: 50 / 150 = 0.33
FAR = [50, 50, 60, 60]


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "iou", "kept"),
    [
        pytest.param([A, A_SHIFTED], [0.9, 0.8], [0, 0], 0.45, [0], id="same-class-suppressed"),
        pytest.param([A, A_SHIFTED], [0.9, 0.8], [0, 1], 0.45, [0, 1], id="other-class-kept"),
        pytest.param([A_SHIFTED, A], [0.8, 0.9], [2, 2], 0.45, [1], id="higher-score-wins"),
        pytest.param([A, HALF], [0.9, 0.8], [0, 0], 0.45, [0, 1], id="below-iou-kept"),
        pytest.param([A, HALF], [0.9, 0.8], [0, 0], 0.3, [0], id="above-iou-suppressed"),
        pytest.param([FAR, A, HALF], [0.5, 0.6, 0.7], [0, 0, 1], 0.45, [2, 1, 0], id="score-order"),
        pytest.param([FAR, A, [20, 20, 30, 30]], [0.5, 0.5, 0.5], [0, 0, 0], 0.45, [0, 1, 2], id="ties"),
        pytest.param(np.zeros((0, 4)), [], [], 0.45, [], id="empty"),
    ],
)
def test_nms(boxes: Any, scores: Any, classes: Any, iou: float, kept: list[int]) -> None:
    out = nms(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(classes), iou)
    assert out.tolist() == kept
    assert out.dtype == np.int64


# --- end to end through OnnxDetector ------------------------------------------------

# Frame 128x96 into a 64x64 input: scale 0.5, image rows 0..47, padding below.
FRAME_128x96 = np.zeros((96, 128, 3), np.uint8)
YOLOV8_ROWS = [
    (20, 20, 10, 10, 0.9, 0.0, 0.0),  # cat, frame [30, 30, 50, 50]
    (21, 20, 10, 10, 0.8, 0.0, 0.0),  # cat overlapping the first: suppressed
    (20, 20, 10, 10, 0.0, 0.7, 0.0),  # dog on the same spot: kept, NMS is per class
    (40, 30, 8, 8, 0.0, 0.0, 0.2),  # under min_score
    (60, 40, 10, 10, 0.0, 0.0, 0.6),  # cow over the right edge: clipped to x = 128
    (30, 58, 6, 4, 0.0, 0.0, 0.95),  # wholly in the letterbox padding: dropped
]


def test_yolov8_graph_end_to_end(tmp_path: Path) -> None:
    path = make_graph(
        tmp_path / "v8.onnx", yolov8_rows(YOLOV8_ROWS, 8), names="{0: 'cat', 1: 'dog', 2: 'cow'}"
    )
    det = load_detector(ModelConfig(path=str(path), min_score=0.35, nms_iou=0.45))
    assert det.decoder == "yolov8"
    assert det.labels == ("cat", "dog", "cow")
    assert (det.input_width, det.input_height) == (64, 64)
    assert detections_as_rows(det, FRAME_128x96) == [
        ("cat", 0.9, [30, 30, 50, 50]),
        ("dog", 0.7, [30, 30, 50, 50]),
        ("cow", 0.6, [110, 70, 128, 90]),
    ]
    assert det.last_timing.inference_ms > 0


def test_yolov5_graph_end_to_end_without_names(tmp_path: Path) -> None:
    rows = [
        (16, 16, 8, 8, 0.8, 0.5, 0.9),  # class1 0.72
        (17, 16, 8, 8, 0.9, 0.6, 0.1),  # class0 0.54, overlaps the first but another class
        (17, 17, 8, 8, 0.5, 0.9, 0.0),  # class0 0.45, suppressed by the second
        (48, 48, 16, 16, 0.3, 1.0, 0.0),  # objectness under min_score
    ]
    path = make_graph(tmp_path / "v5.onnx", yolov5_rows(rows, 10))
    det = load_detector(ModelConfig(path=str(path), min_score=0.35, nms_iou=0.45))
    assert det.decoder == "yolov5"
    assert det.labels == ("class0", "class1")
    assert detections_as_rows(det, np.zeros((128, 128, 3), np.uint8)) == [
        ("class1", 0.72, [24, 24, 40, 40]),
        ("class0", 0.54, [26, 24, 42, 40]),
    ]


def test_yolox_graph_end_to_end(tmp_path: Path) -> None:
    path = make_graph(tmp_path / "x.onnx", yolox_output(YOLOX_CELLS), names="['bag', 'cart']")
    det = load_detector(ModelConfig(path=str(path), min_score=0.35))
    assert det.decoder == "yolox"
    assert det.labels == ("bag", "cart")
    assert detections_as_rows(det, np.zeros((128, 128, 3), np.uint8)) == [
        ("cart", 0.72, [40, 24, 72, 56]),
        ("bag", 0.54, [64, 32, 96, 64]),
        ("bag", 0.5, [16, 80, 48, 112]),
    ]


def test_eighty_classes_without_names_are_coco(tmp_path: Path) -> None:
    row = (20, 20, 10, 10, *([0.0] * 3), 0.9, *([0.0] * 76))  # class 3
    det = load_detector(ModelConfig(path=str(make_graph(tmp_path / "coco.onnx", yolov8_rows([row], 90)))))
    assert det.labels == COCO80_LABELS
    assert detections_as_rows(det, np.zeros((64, 64, 3), np.uint8)) == [("motorcycle", 0.9, [15, 15, 25, 25])]


def test_decoder_override_is_checked_against_the_output(tmp_path: Path) -> None:
    path = make_graph(tmp_path / "v8.onnx", yolov8_rows(YOLOV8_ROWS, 8))
    with pytest.raises(ModelError, match=r"does not fit the yolox decoder"):
        load_detector(ModelConfig(path=str(path), decoder="yolox"))


@pytest.mark.parametrize(
    ("output", "names", "message"),
    [
        pytest.param(np.zeros((1, 7)), None, r"output shape \[1, 7\] fits no known decoder", id="odd-shape"),
        pytest.param(
            yolov8_rows(YOLOV8_ROWS, 8), "{0: 'cat'}", r"has 3 classes but its metadata names 1", id="names"
        ),
    ],
)
def test_unusable_model_is_a_model_error(
    tmp_path: Path, output: np.ndarray, names: str | None, message: str
) -> None:
    path = make_graph(tmp_path / "bad.onnx", output, names=names)
    with pytest.raises(ModelError, match=message) as info:
        load_detector(ModelConfig(path=str(path)))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_not_an_onnx_file_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match=r"cannot load the ONNX model .*broken\.onnx") as info:
        load_detector(ModelConfig(path=str(path)))
    assert "\n" not in str(info.value)


def test_missing_custom_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nope\.onnx \(model\.path\) does not exist"):
        load_detector(ModelConfig(path=str(tmp_path / "nope.onnx")))


# --- providers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "available", "chosen"),
    [
        (["CPUExecutionProvider"], ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (["CUDAExecutionProvider"], ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        ([], ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ],
)
def test_select_providers(requested: list[str], available: list[str], chosen: list[str]) -> None:
    assert select_providers(requested, available) == chosen


def test_missing_providers_are_logged_and_cpu_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = make_graph(tmp_path / "v8.onnx", yolov8_rows(YOLOV8_ROWS, 8))
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING, logger="edge_agent.pipeline.detect.onnx"):
        det = load_detector(ModelConfig(path=str(path), providers=wanted))
    assert det.providers == ["CPUExecutionProvider"]
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "TensorrtExecutionProvider" in warning and "CUDAExecutionProvider" in warning


@pytest.mark.parametrize(
    ("output", "channels", "blue_plane", "scale"),
    [
        pytest.param(yolov8_rows(YOLOV8_ROWS, 8), "rgb", 2, 1 / 255, id="ultralytics-rgb-0-1"),
        pytest.param(yolox_output(YOLOX_CELLS), "bgr", 0, 1.0, id="yolox-bgr-0-255"),
    ],
)
def test_custom_model_input_format_follows_decoder(
    tmp_path: Path, output: np.ndarray, channels: str, blue_plane: int, scale: float
) -> None:
    det = load_detector(ModelConfig(path=str(make_graph(tmp_path / "m.onnx", output))))
    assert det.model.input_channels == channels
    blue = np.zeros((32, 64, 3), np.uint8)
    blue[:, :, 0] = 200
    tensor, _ = det.preprocess(blue)
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, blue_plane, :32], 200 * scale, rtol=1e-6)
    assert float(tensor[0, 1, :32].max()) == 0.0
    assert float(tensor[0, 0, 40, 0]) == pytest.approx(114 * scale)  # padding below the image
