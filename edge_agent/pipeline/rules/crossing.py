"""Line crossing, the building block `line_cross` and `count` share.

One object keeps, per track id, the side of the line the track's anchor (bottom
centre) was last seen on, and returns the crossings of each frame, as
supervision's `LineZone.trigger` does. What a crossing means is the caller's:
`line_cross` makes an event of each, `count` counts distinct tracks per
direction.

Direction: `in` is crossing from the left of the line to its right, as seen
walking along it from its first point to its second. A track must sit at least
`DEAD_BAND` of its own height (and `MIN_DEAD_BAND_PX`) off the line to count as
being on a side, so a person lingering on the line with a jittering box never
counts twice; the anchor's path between the two sides must cut the segment
itself (passing beyond an end of the line is no crossing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edge_agent.core.geometry import segments_intersect, side_of_point, to_pixels
from edge_agent.core.types import Detections

DEAD_BAND = 0.15  # share of a track's own height it must be off the line to be on a side
MIN_DEAD_BAND_PX = 3.0
Direction = Literal["in", "out"]


@dataclass(frozen=True)
class Crossing:
    """One track crossing the line in this frame: `row` indexes the detections given."""

    row: int
    track_id: int
    direction: Direction


@dataclass(frozen=True)
class LineView:
    """One frame's objects against one line (`LineCrossing.measure`): the line's ends in pixels,
    and per object its track id, side (1 left, -1 right, 0 in the dead band) and anchor."""

    a: tuple[float, float]
    b: tuple[float, float]
    track_ids: tuple[int, ...]
    sides: tuple[int, ...]
    anchors: tuple[tuple[float, float], ...]


class LineCrossing:
    """Per-track side of one line; `update` returns this frame's crossings."""

    def __init__(self, points: Sequence[Sequence[float]]) -> None:
        self.points = [(float(p[0]), float(p[1])) for p in points]
        self.key = tuple(self.points)  # what a frame's shared measures are filed under
        # per track: (side, anchor where that side was last seen)
        self._side: dict[int, tuple[int, tuple[float, float]]] = {}
        self._size: tuple[int, int] | None = None
        self._ends: tuple[tuple[float, float], tuple[float, float], float] = ((0.0, 0.0), (0.0, 0.0), 1.0)

    def _pixel_ends(self, width: int, height: int) -> tuple[tuple[float, float], tuple[float, float], float]:
        """The line's two ends in pixels and its length, made once per frame size."""
        if self._size != (width, height):
            (ax, ay), (bx, by) = to_pixels(self.points, width, height).tolist()
            length = max(((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5, 1e-6)
            self._ends = ((ax, ay), (bx, by), length)
            self._size = (width, height)
        return self._ends

    def update(self, dets: Detections, width: int, height: int) -> list[Crossing]:
        """The crossings of `dets` (tracked) in a `width` x `height` frame, in row order."""
        return self.advance(self.measure(dets, width, height))

    def measure(self, dets: Detections, width: int, height: int) -> LineView:
        """Where `dets` (tracked) stand against the line; no state changes, so the rules on one
        line (`in` and `out`) measure a frame once."""
        assert dets.track_id is not None, "line crossing needs tracked detections"
        a, b, length = self._pixel_ends(width, height)
        # Python numbers: for a frame's few objects a loop costs less than NumPy calls, and
        # `side_of_point` does `side_of_line`'s sums in the same doubles
        points = tuple((x, y) for x, y in dets.anchors.tolist())
        sides = []
        for (x, y), h in zip(points, dets.heights.tolist(), strict=True):
            dist = side_of_point(x, y, a, b) / length
            sides.append(0 if abs(dist) < max(MIN_DEAD_BAND_PX, DEAD_BAND * h) else 1 if dist > 0 else -1)
        return LineView(a, b, tuple(dets.track_id.tolist()), tuple(sides), points)

    def advance(self, view: LineView) -> list[Crossing]:
        """This frame's crossings, from a `measure` of it with this line (any object's)."""
        out: list[Crossing] = []
        for j, (tid, side) in enumerate(zip(view.track_ids, view.sides, strict=True)):
            if side == 0:
                continue
            here = view.anchors[j]
            prev = self._side.get(tid)
            self._side[tid] = (side, here)
            if prev is None or prev[0] == side or not segments_intersect(prev[1], here, view.a, view.b):
                continue
            out.append(Crossing(j, tid, "in" if side > 0 else "out"))
        if len(self._side) > 4 * max(len(set(view.track_ids)), 16):
            # forget tracks long gone so state stays bounded on a busy street
            live = set(view.track_ids)
            self._side = {t: s for t, s in self._side.items() if t in live}
        return out
