"""What every zone kind shares: zone membership with inertia, the anchor test, the matcher.

Zone membership with inertia, keyed by track id.

Membership uses the bottom-centre anchor (where a person or car touches the
ground), so a tall person standing beside a zone is not counted in it. An
object must be inside for `enter_frames` analysed frames to count, and outside
(or unseen) for `exit_frames` to leave: one jittery box never starts or ends an
incident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.geometry import PolygonEdges, box_iou, to_pixels
from edge_agent.core.types import Detections, EventObject
from edge_agent.pipeline.rules.base import Scene, selected

Box = tuple[float, float, float, float]


@dataclass
class _Member:
    inside_frames: int = 0
    outside_frames: int = 0
    confirmed: bool = False
    since_s: float = 0.0
    last_inside_s: float = 0.0


class PixelPolygon:
    """A relative polygon turned into pixels once the frame size is known."""

    def __init__(self, relative: Sequence[Sequence[float]]) -> None:
        self.relative = [tuple(p) for p in relative]
        self.key = tuple(self.relative)  # what a frame's shared zone tests are filed under
        self._size: tuple[int, int] | None = None
        self._pixels: npt.NDArray[np.float32] = np.zeros((0, 2), np.float32)
        self._edges: PolygonEdges | None = None

    def pixels(self, width: int, height: int) -> npt.NDArray[np.float32]:
        if self._size != (width, height):
            self._pixels = to_pixels(self.relative, width, height)
            self._size = (width, height)
            self._edges = None
        return self._pixels

    def contains(self, points: npt.NDArray[np.float32], width: int, height: int) -> npt.NDArray[np.bool_]:
        """Which of the (n, 2) pixel `points` are inside (`points_in_polygon`), the polygon's
        edges made once per frame size."""
        pixels = self.pixels(width, height)
        if self._edges is None:
            self._edges = PolygonEdges(pixels)
        return self._edges.contains(points)

    def holds_anchor(self, box: Box, width: int, height: int, tolerance: float) -> bool:
        """Whether the bottom centre of `box` is in the polygon, or at most `tolerance` box heights
        outside it (a box cut by the zone's edge, or a zone drawn a little tight, still counts)."""
        poly = self.pixels(width, height).reshape(-1, 1, 2)
        anchor = ((box[0] + box[2]) / 2.0, box[3])
        dist = cv2.pointPolygonTest(poly, anchor, True)
        return bool(dist >= -tolerance * max(box[3] - box[1], 1.0))


class _Followed(Protocol):
    """Something a kind follows across frames: a static candidate, a vendor's spot."""

    track_id: int
    ref: EventObject


def match_followed(
    ref: EventObject, followed: Sequence[_Followed], free: list[int], min_iou: float
) -> int | None:
    """The index (in `free`) of what `ref` continues: the same track id, else the best box
    overlap of at least `min_iou` (the tracker gave a new id after a gap); None for a new one."""
    match = next((i for i in free if followed[i].track_id == ref.track_id), None)
    if match is None and free:
        ious = box_iou(np.array([ref.xyxy]), np.array([followed[i].ref.xyxy for i in free]))[0]
        best = int(np.argmax(ious))
        if ious[best] >= min_iou:
            match = free[best]
    return match


class ZoneMembership:
    def __init__(
        self,
        polygon: Sequence[Sequence[float]],
        enter_frames: int = 2,
        exit_frames: int = 3,
        exit_s: float = 1.0,
    ) -> None:
        self.polygon = PixelPolygon(polygon)
        self.enter_frames = enter_frames
        self.exit_frames = exit_frames
        self.exit_s = exit_s
        self._members: dict[int, _Member] = {}

    def update(
        self,
        track_ids: npt.NDArray[np.int64],
        anchors: npt.NDArray[np.float32],
        width: int,
        height: int,
        media_s: float,
    ) -> dict[int, float]:
        """Feed this frame's tracks; returns {track_id: since_s} of the confirmed members."""
        return self._update(track_ids, self.polygon.contains(anchors, width, height), media_s)

    def _update(
        self, track_ids: npt.NDArray[np.int64], inside: npt.NDArray[np.bool_], media_s: float
    ) -> dict[int, float]:
        seen: set[int] = set()
        for tid, is_in in zip(track_ids.tolist(), inside.tolist(), strict=True):
            seen.add(tid)
            m = self._members.get(tid)
            if m is None:
                if not is_in:
                    continue
                m = self._members[tid] = _Member(since_s=media_s)
            if is_in:
                if m.inside_frames == 0 and not m.confirmed:
                    m.since_s = media_s
                m.inside_frames += 1
                m.outside_frames = 0
                m.last_inside_s = media_s
                if m.inside_frames >= self.enter_frames:
                    m.confirmed = True
            else:
                self._mark_outside(tid, m, media_s)
        for tid in [t for t in self._members if t not in seen]:
            self._mark_outside(tid, self._members[tid], media_s)
        return {tid: m.since_s for tid, m in self._members.items() if m.confirmed}

    def update_scene(
        self, scene: Scene, idx: npt.NDArray[np.intp]
    ) -> tuple[Detections, npt.NDArray[np.int64], dict[int, float]]:
        """`update` with the scene's objects at `idx`: those objects, their track ids, the members."""
        dets = selected(scene, idx)
        assert dets.track_id is not None, "zones need tracked detections"
        frame = scene.frame
        # rules on the same zone and objects (presence and dwell on one lawn) share the test
        key = ("inside", self.polygon.key, frame.width, frame.height, idx.dtype.str, idx.tobytes())
        inside = scene.shared.get(key)
        if inside is None:
            inside = scene.shared[key] = self.polygon.contains(dets.anchors, frame.width, frame.height)
        return dets, dets.track_id, self._update(dets.track_id, inside, frame.media_s)

    def _mark_outside(self, tid: int, m: _Member, media_s: float) -> None:
        m.outside_frames += 1
        if not m.confirmed:
            m.inside_frames = 0
        gone = m.outside_frames >= self.exit_frames and media_s - m.last_inside_s >= self.exit_s
        if gone or (not m.confirmed and m.outside_frames >= self.exit_frames):
            del self._members[tid]
