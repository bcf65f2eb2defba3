"""Pure geometry: polygons, lines, IoU and letterboxing. No state, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Point = tuple[float, float]


def to_pixels(points: Sequence[Sequence[float]], width: int, height: int) -> FloatArray:
    """Relative (0..1) points to pixel coordinates, shape (n, 2)."""
    arr = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    return arr * np.array([width, height], dtype=np.float32)


# Up to this many point-edge pairs the even-odd test runs as a Python loop: for the few
# objects of a frame a dozen small NumPy calls cost more than the loop (same sums, in order,
# in the same IEEE doubles, so both give the same answers).
_LOOP_PAIRS = 256


class PolygonEdges:
    """One polygon's edges, made once, for the even-odd test of many point sets.

    A zone's polygon is tested against every analysed frame's anchors; rolling and
    subtracting its vertices each time was most of the test's cost.
    """

    __slots__ = ("dx", "dy", "rows", "x1", "y1", "y2")

    def __init__(self, polygon: FloatArray) -> None:
        poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        self.x1, self.y1 = poly[:, 0], poly[:, 1]
        x2, self.y2 = np.roll(self.x1, -1), np.roll(self.y1, -1)
        self.dx, self.dy = x2 - self.x1, self.y2 - self.y1
        # per edge (x1, y1, y2, dx, dy) as Python floats, for the loop
        self.rows = list(
            zip(*(a.tolist() for a in (self.x1, self.y1, self.y2, self.dx, self.dy)), strict=True)
        )

    def contains(self, points: FloatArray) -> npt.NDArray[np.bool_]:
        """Even-odd test of (n, 2) points: `points_in_polygon` with the edges made."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(pts) * len(self.rows) <= _LOOP_PAIRS:
            return np.array([self._holds(x, y) for x, y in pts.tolist()], dtype=bool)
        x, y = pts[:, 0:1], pts[:, 1:2]
        straddles = (self.y1 > y) != (self.y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = self.x1 + (y - self.y1) * self.dx / self.dy
        hits = straddles & (x < x_cross)
        # parity of the crossings per point: one reduction instead of sum, modulo and compare
        return np.asarray(np.bitwise_xor.reduce(hits, axis=1))

    def _holds(self, x: float, y: float) -> bool:
        inside = False
        for x1, y1, y2, dx, dy in self.rows:
            # an edge that straddles y is not horizontal: dy is never 0 in the division
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * dx / dy:
                inside = not inside
        return inside


def points_in_polygon(points: FloatArray, polygon: FloatArray) -> npt.NDArray[np.bool_]:
    """Vectorised even-odd test of (n, 2) points against one (m, 2) polygon.

    Points exactly on an edge may fall either way; zones are drawn by hand, so
    a one-pixel border decision does not matter. A polygon tested again and again
    keeps its `PolygonEdges`.
    """
    return PolygonEdges(polygon).contains(points)


def side_of_line(points: FloatArray, a: Point, b: Point) -> npt.NDArray[np.float64]:
    """Signed cross product: > 0 left of a→b (image coordinates, y down), < 0 right."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.asarray((b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]))


def side_of_point(x: float, y: float, a: Point, b: Point) -> float:
    """`side_of_line` of one point, in Python floats (the same sums, in order)."""
    return (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])


def segments_intersect(p1: Point, p2: Point, a: Point, b: Point) -> bool:
    """Whether segment p1→p2 crosses segment a→b (touching counts)."""

    def orient(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = orient(a, b, p1), orient(a, b, p2)
    d3, d4 = orient(p1, p2, a), orient(p1, p2, b)
    return (d1 * d2 <= 0) and (d3 * d4 <= 0) and not (d1 == 0 and d2 == 0)


def _intersections(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Intersection areas (len(a), len(b)) and each side's box areas, for xyxy boxes."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    return inter, (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1), (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)


def box_iou(a: FloatArray, b: FloatArray) -> npt.NDArray[np.float32]:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0), dtype=np.float32)


def box_overlap_of_first(a: FloatArray, b: FloatArray) -> npt.NDArray[np.float32]:
    """Share of each box of `a` covered by each box of `b` (len(a), len(b))."""
    inter, area_a, _ = _intersections(a, b)
    return np.asarray(inter / np.maximum(area_a[:, None], 1e-9), dtype=np.float32)


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: scale, then pad bottom/right."""

    scale: float
    input_w: int
    input_h: int

    def to_frame(self, xyxy: FloatArray, frame_w: int, frame_h: int) -> FloatArray:
        """Model-input boxes back to frame pixels, clipped to the frame."""
        out = np.asarray(xyxy, dtype=np.float32) / self.scale
        # one clip against per-column limits, in place (x to the width, y to the height)
        limits = np.array([frame_w, frame_h, frame_w, frame_h], dtype=np.float32)
        return np.clip(out, 0, limits, out=out)


def letterbox_tensor(
    image: npt.NDArray[np.uint8], input_w: int, input_h: int, pad_value: int = 114, rgb: bool = False
) -> tuple[npt.NDArray[np.float32], Letterbox]:
    """The model input (1, 3, input_h, input_w) float32 of a BGR image: resized keeping its
    aspect ratio, padded at bottom/right with `pad_value`, channels in BGR order (RGB with `rgb`).

    The resized picture is split into its planes (OpenCV's SIMD split) and each plane is cast
    into the tensor: the same numbers as a padded uint8 canvas transposed to NCHW and cast in
    one NumPy pass, in two thirds of the time (that transpose reads across channels)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"the detector takes a colour picture (height, width, 3), not shape {image.shape}")
    h, w = image.shape[:2]
    scale = min(input_w / w, input_h / h)
    new_w, new_h = round(w * scale), round(h * scale)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    tensor = np.empty((1, 3, input_h, input_w), dtype=np.float32)
    tensor[0, :, new_h:, :] = pad_value
    tensor[0, :, :new_h, new_w:] = pad_value
    planes = cv2.split(resized)
    for c, plane in enumerate(planes[::-1] if rgb else planes):
        tensor[0, c, :new_h, :new_w] = plane
    return tensor, Letterbox(scale=scale, input_w=input_w, input_h=input_h)
