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

import numpy as np
import numpy.typing as npt

from edge_agent.core.geometry import segments_intersect, side_of_line, to_pixels
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


class LineCrossing:
    """Per-track side of one line; `update` returns this frame's crossings."""

    def __init__(self, points: Sequence[Sequence[float]]) -> None:
        self.points = [(float(p[0]), float(p[1])) for p in points]
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
        assert dets.track_id is not None, "line crossing needs tracked detections"
        a, b, length = self._pixel_ends(width, height)
        anchors: npt.NDArray[np.float32] = dets.anchors
        # Python numbers for the per-track loop: indexing arrays one element at a time costs more
        dists = (side_of_line(anchors, a, b) / length).tolist()
        heights = dets.heights.tolist()
        points = anchors.tolist()
        track_ids = dets.track_id.tolist()
        out: list[Crossing] = []
        for j, tid in enumerate(track_ids):
            dist = dists[j]
            if abs(dist) < max(MIN_DEAD_BAND_PX, DEAD_BAND * heights[j]):
                continue
            side = 1 if dist > 0 else -1
            here = (points[j][0], points[j][1])
            prev = self._side.get(tid)
            self._side[tid] = (side, here)
            if prev is None or prev[0] == side or not segments_intersect(prev[1], here, a, b):
                continue
            out.append(Crossing(j, tid, "in" if side > 0 else "out"))
        if len(self._side) > 4 * max(len(set(track_ids)), 16):
            # forget tracks long gone so state stays bounded on a busy street
            live = set(track_ids)
            self._side = {t: s for t, s in self._side.items() if t in live}
        return out
