"""The shared line-crossing block: one object, the crossings `line_cross` and `count` both act on."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.core.types import Detections
from edge_agent.pipeline.rules.crossing import LineCrossing

W, H = 200, 100
LINE = [(0.5, 0.0), (0.5, 1.0)]  # top to bottom: "in" is moving right to left


def person(tid: int, x: float, y: float = 80.0) -> Detections:
    return Detections(
        xyxy=np.array([[x - 5, y - 40, x + 5, y]], np.float32),
        score=np.array([0.9], np.float32),
        class_id=np.array([0], np.int32),
        track_id=np.array([tid], np.int64),
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param([150, 120, 80, 40], ["in"], id="right-to-left-is-in"),
        pytest.param([40, 80, 150], ["out"], id="left-to-right-is-out"),
        pytest.param([150, 40, 150], ["in", "out"], id="there-and-back"),
        pytest.param([150, 101, 99, 102, 98, 150], [], id="jitter-in-the-dead-band"),
        pytest.param([150, 160, 170], [], id="stays-on-one-side"),
    ],
)
def test_crossings_per_track(path: list[float], expected: list[str]) -> None:
    line = LineCrossing(LINE)
    seen = [c.direction for x in path for c in line.update(person(7, x), W, H)]
    assert seen == expected


def test_passing_beyond_the_end_of_the_segment_is_no_crossing() -> None:
    line = LineCrossing([(0.5, 0.0), (0.5, 0.5)])  # the line ends half-way down
    assert [c for x in (150, 40) for c in line.update(person(1, x, 95.0), W, H)] == []


def test_each_track_keeps_its_own_side() -> None:
    line = LineCrossing(LINE)
    line.update(person(1, 150), W, H)
    (c,) = line.update(person(2, 40), W, H) + line.update(person(1, 40), W, H)
    assert (c.track_id, c.direction, c.row) == (1, "in", 0)
