"""Pure geometry and the detections' shapes: the vectorised forms give the plain answers."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.core.geometry import Letterbox, PolygonEdges, points_in_polygon, side_of_line, side_of_point
from edge_agent.core.types import Detections


def _even_odd(x: float, y: float, polygon: list[tuple[float, float]]) -> bool:
    """The even-odd rule one point at a time, in Python floats (the same sums, in order)."""
    inside = False
    for k, (x1, y1) in enumerate(polygon):
        x2, y2 = polygon[(k + 1) % len(polygon)]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


@pytest.mark.parametrize("grid", [True, False], ids=["on-vertices-and-edges", "anywhere"])
def test_points_in_polygon_is_the_even_odd_rule(grid: bool) -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):  # few points (tested one by one) and many (tested as arrays)
        m, n = int(rng.integers(3, 10)), int(rng.integers(1, 80))
        if grid:  # small integers: points on vertices, edges and horizontal edges are common
            poly = rng.integers(0, 8, (m, 2)).astype(np.float32)
            pts = rng.integers(0, 8, (n, 2)).astype(np.float32)
        else:
            poly = (rng.random((m, 2)) * 100).astype(np.float32)
            pts = (rng.random((n, 2)) * 100).astype(np.float32)
        corners = [(float(x), float(y)) for x, y in poly]
        expected = [_even_odd(float(x), float(y), corners) for x, y in pts]
        assert points_in_polygon(pts, poly).tolist() == expected


def test_polygon_edges_answer_every_point_set_alike() -> None:
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    edges = PolygonEdges(square)
    for pts in ([[5, 5], [15, 5]], [[-1, 3]], [[9.5, 0.5], [0.5, 9.5], [5, 11]]):
        arr = np.array(pts, np.float32)
        assert edges.contains(arr).tolist() == points_in_polygon(arr, square).tolist()
    assert edges.contains(np.zeros((0, 2), np.float32)).shape == (0,)


def test_side_of_point_is_side_of_line_one_point_at_a_time() -> None:
    rng = np.random.default_rng(5)
    pts = (rng.random((200, 2)) * 500).astype(np.float32)
    a, b = (120.5, 10.25), (300.0, 470.75)
    expected = side_of_line(pts, a, b).tolist()
    assert [side_of_point(x, y, a, b) for x, y in pts.tolist()] == expected
    assert side_of_point(0, 0, (0, 0), (0, 10)) == 0 and side_of_point(5, 5, (0, 0), (0, 10)) < 0


def test_letterbox_boxes_come_back_clipped_to_the_frame() -> None:
    box = Letterbox(scale=0.5, input_w=416, input_h=416)
    out = box.to_frame(np.array([[-10, -4, 100, 60], [300, 200, 410, 300]], np.float32), 640, 480)
    assert out.dtype == np.float32
    assert out.tolist() == [[0, 0, 200, 120], [600, 400, 640, 480]]


def test_anchors_are_bottom_centres_made_once() -> None:
    dets = Detections(np.array([[10, 20, 30, 60], [0, 0, 5, 7]], np.float32), [0.9, 0.8], [0, 1], [1, 2])
    anchors = dets.anchors
    assert anchors.tolist() == [[20, 60], [2.5, 7]]
    assert dets.anchors is anchors  # every rule of the frame reads the same array ...
    with pytest.raises(ValueError):
        anchors[0, 0] = 1.0  # ... so none may change it


@pytest.mark.parametrize(
    ("xyxy", "score", "message"),
    [
        (np.zeros((2, 3), np.float32), [0.5, 0.5], r"xyxy: expected shape \(n, 4\), got \(2, 3\)"),
        (np.zeros((2, 4), np.float32), [0.5], r"score: expected shape \(2\), got \(1,\)"),
        (np.zeros(4, np.float32), [0.5], r"xyxy: expected shape \(n, 4\), got \(4,\)"),
    ],
)
def test_detections_name_the_array_of_the_wrong_shape(
    xyxy: np.ndarray, score: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(xyxy, score, np.zeros(len(score), np.int32))


def test_detections_take_lists_and_empty_arrays() -> None:
    dets = Detections([[1, 2, 3, 4]], [0.5], [2], [9])
    assert (dets.xyxy.dtype, dets.score.dtype, dets.class_id.dtype) == (np.float32, np.float32, np.int32)
    assert dets.track_id is not None and dets.track_id.dtype == np.int64
    assert Detections([], [], []).xyxy.shape == (0, 4)
