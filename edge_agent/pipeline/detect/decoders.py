"""Raw detector outputs to boxes: YOLOX, YOLOv8/YOLO11 and YOLOv5 layouts, plus NMS.

Every function here is pure numpy: an output array in, boxes in model-input
pixels (xyxy), scores and class ids out. Undoing the letterbox is the
detector's job, because only it knows the frame size.

Layouts (batch 1):
- YOLOX   `[1, N, 5 + nc]`: raw grid offsets `x, y, log w, log h`, objectness and class
  scores (both already sigmoid), one row per grid cell of strides 8/16/32.
- YOLOv5  `[1, N, 5 + nc]`: `cx, cy, w, h` in input pixels, objectness, class scores.
- YOLOv8  `[1, 4 + nc, N]`: `cx, cy, w, h` then class scores, no objectness (YOLO11 too).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

DecoderName = Literal["yolox", "yolov8", "yolov5"]
DECODERS: tuple[DecoderName, ...] = ("yolox", "yolov8", "yolov5")
YOLOX_STRIDES = (8, 16, 32)

Boxes = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float32]
ClassIds = npt.NDArray[np.int32]
Decoded = tuple[Boxes, Scores, ClassIds]


def _empty() -> Decoded:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)


def _cxcywh_to_xyxy(cx: np.ndarray, cy: np.ndarray, w: np.ndarray, h: np.ndarray) -> Boxes:
    half_w, half_h = w / 2, h / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.float32)


def _check_rank3(out: np.ndarray, layout: str) -> None:
    if out.ndim != 3 or out.shape[0] != 1:
        raise ValueError(f"expected an output of shape {layout} (batch 1), got {list(out.shape)}")


@lru_cache(maxsize=8)
def _yolox_cells(input_w: int, input_h: int) -> npt.NDArray[np.float32]:
    """`yolox_grid` as one (N, 3) table of cell x, cell y and stride: one gather per frame."""
    grid, stride = yolox_grid(input_w, input_h)
    cells = np.concatenate([grid, stride], axis=1)
    cells.flags.writeable = False
    return cells


@lru_cache(maxsize=8)
def yolox_grid(input_w: int, input_h: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cell origins (N, 2) and strides (N, 1) of the YOLOX heads, in output row order.

    Cached: the grid depends only on the input size, and rebuilding it per frame
    would cost more than the decode itself. The arrays are read-only.
    """
    grids, strides = [], []
    for stride in YOLOX_STRIDES:
        rows, cols = input_h // stride, input_w // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        grids.append(np.stack([xs, ys], axis=2).reshape(-1, 2))
        strides.append(np.full((rows * cols, 1), stride))
    grid = np.concatenate(grids).astype(np.float32)
    stride_col = np.concatenate(strides).astype(np.float32)
    grid.flags.writeable = False
    stride_col.flags.writeable = False
    return grid, stride_col


def yolox_grid_count(input_w: int, input_h: int) -> int:
    """Rows a YOLOX output has for this input size (3549 for 416x416, 8400 for 640x640)."""
    return sum((input_h // s) * (input_w // s) for s in YOLOX_STRIDES)


def _best_class(rows: np.ndarray, objectness: np.ndarray | None) -> tuple[Scores, ClassIds]:
    """Per row: the best class and its score (times objectness, if any)."""
    cls = rows if objectness is None else rows * objectness[:, None]
    # the row's maximum is the value at its argmax (a zero may differ in sign; NMS drops zeros)
    return cls.max(axis=1).astype(np.float32, copy=False), cls.argmax(axis=1).astype(np.int32)


def decode_yolox(out: np.ndarray, input_w: int, input_h: int, min_score: float) -> Decoded:
    """YOLOX `[1, N, 5 + nc]` raw grid offsets: `xy = (xy + grid) * stride`, `wh = exp(wh) * stride`."""
    _check_rank3(out, "[1, N, 5 + nc]")
    pred = out[0]
    grid, stride = yolox_grid(input_w, input_h)
    if pred.shape[0] != len(grid) or pred.shape[1] < 6:
        raise ValueError(
            f"a YOLOX output for a {input_w}x{input_h} input has shape [1, {len(grid)}, 5 + nc], "
            f"got {list(out.shape)}"
        )
    # score = obj * cls <= obj, so rows under the threshold by objectness alone can go
    # before the (N, nc) product: this keeps the decode well under a millisecond.
    cand = (pred[:, 4] >= min_score).nonzero()[0]
    if cand.size == 0:
        return _empty()
    rows = pred[cand]
    cls = rows[:, 5:] * rows[:, 4:5]
    scores = cls.max(axis=1).astype(np.float32, copy=False)  # see _best_class
    keep = (scores >= min_score).nonzero()[0]
    rows, cand, scores = rows[keep], cand[keep], scores[keep]
    class_ids = cls[keep].argmax(axis=1).astype(np.int32)
    cells = _yolox_cells(input_w, input_h)[cand]
    stride = cells[:, 2:3]
    xy = (rows[:, 0:2] + cells[:, 0:2]) * stride
    half_wh = np.exp(rows[:, 2:4]) * stride / 2
    boxes = np.concatenate([xy - half_wh, xy + half_wh], axis=1).astype(np.float32, copy=False)
    return boxes, scores, class_ids


def decode_yolov5(out: np.ndarray, min_score: float) -> Decoded:
    """YOLOv5 `[1, N, 5 + nc]`: `cx, cy, w, h` in input pixels, objectness, class scores."""
    _check_rank3(out, "[1, N, 5 + nc]")
    pred = out[0]
    if pred.shape[1] < 6:
        raise ValueError(f"a YOLOv5 output has shape [1, N, 5 + nc] with nc >= 1, got {list(out.shape)}")
    cand = np.flatnonzero(pred[:, 4] >= min_score)
    if cand.size == 0:
        return _empty()
    rows = pred[cand]
    scores, class_ids = _best_class(rows[:, 5:], rows[:, 4])
    keep = scores >= min_score
    rows = rows[keep]
    boxes = _cxcywh_to_xyxy(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])
    return boxes, scores[keep], class_ids[keep]


def decode_yolov8(out: np.ndarray, min_score: float) -> Decoded:
    """YOLOv8 / YOLO11 `[1, 4 + nc, N]`: `cx, cy, w, h` then class scores, no objectness."""
    _check_rank3(out, "[1, 4 + nc, N]")
    pred = out[0]
    if pred.shape[0] < 5:
        raise ValueError(f"a YOLOv8 output has shape [1, 4 + nc, N] with nc >= 1, got {list(out.shape)}")
    cls = pred[4:]
    cand = np.flatnonzero(cls.max(axis=0) >= min_score)
    if cand.size == 0:
        return _empty()
    rows = pred[:, cand].T
    scores, class_ids = _best_class(rows[:, 4:], None)
    boxes = _cxcywh_to_xyxy(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])
    return boxes, scores, class_ids


def decode(name: DecoderName, out: np.ndarray, input_w: int, input_h: int, min_score: float) -> Decoded:
    """Dispatch to the decoder called `name`."""
    if name == "yolox":
        return decode_yolox(out, input_w, input_h, min_score)
    if name == "yolov8":
        return decode_yolov8(out, min_score)
    if name == "yolov5":
        return decode_yolov5(out, min_score)
    raise ValueError(f"unknown decoder {name!r}; expected one of: {', '.join(DECODERS)}")


def _shape_txt(shape: Sequence[object]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _no_decoder_msg(shape: Sequence[object]) -> str:
    return (
        f"output shape {_shape_txt(shape)} fits no known decoder: expected [1, 4 + nc, N] (YOLOv8/11) "
        "or [1, N, 5 + nc] (YOLOX, YOLOv5)"
    )


def infer_decoder(output_shape: Sequence[object], input_w: int, input_h: int) -> DecoderName:
    """Which decoder fits an output shape.

    `[1, 4 + nc, N]` with N > 4 + nc is YOLOv8; `[1, N, 5 + nc]` is YOLOX when N
    is the grid count of strides 8/16/32 for the input size, else YOLOv5.
    """
    dims = [int(d) for d in output_shape if isinstance(d, (int, np.integer))]
    if len(dims) != 3 or len(dims) != len(output_shape) or dims[0] != 1:
        raise ValueError(_no_decoder_msg(output_shape))
    rows, cols = dims[1], dims[2]
    if cols > rows and rows >= 5:
        return "yolov8"
    if rows >= cols and cols >= 6:
        return "yolox" if rows == yolox_grid_count(input_w, input_h) else "yolov5"
    raise ValueError(_no_decoder_msg(output_shape))


def class_count(decoder: DecoderName, output_shape: Sequence[int], input_w: int, input_h: int) -> int:
    """Number of classes an output of this shape holds for `decoder`; ValueError if it does not fit."""
    dims = [int(d) for d in output_shape]
    ok = len(dims) == 3 and dims[0] == 1
    if decoder == "yolov8" and ok and dims[1] >= 5:
        return dims[1] - 4
    if decoder == "yolov5" and ok and dims[2] >= 6:
        return dims[2] - 5
    if decoder == "yolox" and ok and dims[2] >= 6 and dims[1] == yolox_grid_count(input_w, input_h):
        return dims[2] - 5
    layout = {
        "yolov8": "[1, 4 + nc, N]",
        "yolov5": "[1, N, 5 + nc]",
        "yolox": f"[1, {yolox_grid_count(input_w, input_h)}, 5 + nc] for a {input_w}x{input_h} input",
    }.get(decoder, "?")
    raise ValueError(
        f"output shape {_shape_txt(dims)} does not fit the {decoder} decoder, which expects {layout}"
    )


def nms(
    boxes: npt.ArrayLike, scores: npt.ArrayLike, class_ids: npt.ArrayLike, iou_threshold: float
) -> npt.NDArray[np.int64]:
    """Class-aware greedy non-maximum suppression.

    A box is dropped when it overlaps a higher-scoring box of the same class by
    IoU > `iou_threshold`; boxes of different classes never suppress each other;
    boxes scoring 0 are dropped. Returns indices into the inputs ordered by
    score, highest first (ties: lower index first), so the output is deterministic.
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    c = np.asarray(class_ids, dtype=np.int32).reshape(-1)
    if len(b) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    # OpenCV's C++ loop is ~20x faster than a numpy greedy loop on a crowded frame.
    kept = np.asarray(
        cv2.dnn.NMSBoxesBatched(xywh.tolist(), s.tolist(), c.tolist(), 0.0, float(iou_threshold)), np.int64
    ).reshape(-1)
    # OpenCV already returns score order; sorting again pins the tie order down.
    return kept[np.lexsort((kept, -s[kept]))]
