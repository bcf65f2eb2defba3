"""The static candidates `left_object`'s two evidence paths share, and who brought them.

- `StaticStore`: every thing that stands still in the picture and may become a left
  object, whichever path found it: a tracked object of a left-object class (the
  detector path) or a region of new static foreground (the background path). Both
  paths read and write this one store, so a region the detector already follows is
  "claimed", and a place a left object vanished from is known to both: for
  `VANISHED_HOLD_S` whatever new static region shows there is what the object left
  behind (its ghost, a patch the background model had half learnt, a wet spot), never
  a new incident.
- `OwnerHistory`: the owner-label boxes of the last `OWNER_LOOKBACK_S`, from which the
  owner of a candidate (the person or vehicle that covered its place most) is chosen.

Background candidates get track ids of their own range, `BACKGROUND_ID_BASE + n`: they
are positive like the tracker's (users see `object#…`), and the tracker, counting from 1
per camera, never reaches them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge_agent.core.geometry import box_iou, box_overlap_of_first
from edge_agent.core.types import EventObject
from edge_agent.pipeline.rules.zones import Box

Path = Literal["detector", "background"]
BACKGROUND_ID_BASE = 1_000_000_000  # background objects' ids: 1 000 000 001 and up
VANISHED_HOLD_S = 60.0  # a place a left object vanished from stays known this long
VANISHED_IOU = 0.2  # a region overlapping a vanished place this much (IoU) ...
VANISHED_COVER = 0.5  # ... or lying this much inside it is what the object left behind
OWNER_LOOKBACK_S = 10.0  # how far back the owner is looked for
NEAR_MARGIN = 0.25  # an owner-label box, widened by this share of its height, "is near" an object


@dataclass
class Static:
    """One static candidate: where it stands, since when, who brought it."""

    key: str
    path: Path
    track_id: int
    box: Box  # where it is seen now
    still_box: Box  # where it settled
    still_since_s: float
    last_seen_s: float
    owner: int | None = None
    ref: EventObject | None = None  # detector path: the tracked object as last seen
    score: float = 0.0  # background path: the region's foreground confidence
    explained_s: float = float("-inf")  # background path: last covered by a track or a detection
    look: np.ndarray | None = None  # background path: how `look_box` looked when its incident started
    look_box: Box = (0.0, 0.0, 0.0, 0.0)


class StaticStore:
    def __init__(self) -> None:
        self._items: list[Static] = []
        self._vanished: list[tuple[Box, float]] = []  # (place, known until)
        self._next = 0

    def new_key(self, prefix: str) -> tuple[str, int]:
        """A key for a new candidate (`prefix` + a number counted over both paths) and that number."""
        self._next += 1
        return f"{prefix}{self._next}", self._next

    def add(self, item: Static) -> None:
        self._items.append(item)

    def of(self, path: Path) -> list[Static]:
        return [c for c in self._items if c.path == path]

    def boxes(self, path: Path) -> np.ndarray:
        return np.array([c.box for c in self.of(path)], dtype=np.float32).reshape(-1, 4)

    def drop(self, gone: Iterable[Static]) -> None:
        keys = {c.key for c in gone}
        self._items = [c for c in self._items if c.key not in keys]

    def forget_place(self, places: Iterable[Box], now: float) -> None:
        """Remember `places` as places a left object vanished from, until `VANISHED_HOLD_S` from
        now; background candidates standing there go (what they saw was that object)."""
        places = list(places)
        if not places:
            return
        until = now + VANISHED_HOLD_S
        self._vanished = [(b, t) for b, t in self._vanished if t > now]
        self._vanished.extend((b, until) for b in places)
        self._items = [c for c in self._items if c.path != "background" or not self._on(c.box, places)]

    def vanished_at(self, box: Box, now: float) -> bool:
        """Whether `box` lies where an object vanished from in the last `VANISHED_HOLD_S`."""
        places = [b for b, t in self._vanished if t > now]
        return self._on(box, places)

    @staticmethod
    def _on(box: Box, places: list[Box]) -> bool:
        if not places:
            return False
        a, b = np.array([box], np.float32), np.array(places, np.float32)
        return bool(
            (box_iou(a, b)[0] >= VANISHED_IOU).any()
            or (box_overlap_of_first(a, b)[0] >= VANISHED_COVER).any()
        )

    def claimed(self, box: Box, by: Path, share: float) -> bool:
        """Whether a candidate of path `by` covers at least `share` of `box`."""
        boxes = self.boxes(by)
        return bool(len(boxes) and (box_overlap_of_first(np.array([box]), boxes)[0] >= share).any())


class OwnerHistory:
    """The owner-label boxes of the last OWNER_LOOKBACK_S as flat arrays, oldest first:
    appended and trimmed per frame without a loop over the history."""

    def __init__(self) -> None:
        self._ts = np.zeros(0, np.float64)
        self._ids = np.zeros(0, np.int64)
        self._boxes = np.zeros((0, 4), np.float32)

    def remember(self, now: float, ids: np.ndarray, boxes: np.ndarray) -> None:
        keep = int(np.searchsorted(self._ts, now - OWNER_LOOKBACK_S, side="left"))
        self._ts = np.concatenate([self._ts[keep:], np.full(len(ids), now)])
        self._ids = np.concatenate([self._ids[keep:], ids.astype(np.int64)])
        self._boxes = np.concatenate([self._boxes[keep:], boxes.reshape(-1, 4).astype(np.float32)])

    def owner_for(self, box: Box, now: float) -> int | None:
        """The owner-label track that covered `box` (widened) most in the recent past (latest on ties)."""
        ts, ids, boxes = self._ts, self._ids, self._boxes
        if len(ids) == 0:
            return None
        w, h = box[2] - box[0], box[3] - box[1]
        wide = np.array([[box[0] - w / 2, box[1] - h / 2, box[2] + w / 2, box[3] + h / 2]])
        cover = box_overlap_of_first(wide, boxes)[0]
        ok = (cover > 0.0) & (now - ts <= OWNER_LOOKBACK_S)
        if not ok.any():
            return None
        cand = np.flatnonzero(ok)
        # the largest cover, then the latest time, then the first stored
        order = np.lexsort((cand, -ts[cand], -cover[cand]))
        return int(ids[cand[order[0]]])


def near_owner(box: Box, owner_boxes: np.ndarray) -> bool:
    """Whether an owner-label box of this frame (widened by NEAR_MARGIN of its height) touches `box`."""
    if len(owner_boxes) == 0:
        return False
    margin = NEAR_MARGIN * (owner_boxes[:, 3] - owner_boxes[:, 1])
    wide = owner_boxes.copy()
    wide[:, 0] -= margin
    wide[:, 2] += margin
    return bool((box_overlap_of_first(np.array([box]), wide) > 0.0).any())
