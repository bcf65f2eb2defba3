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
  owner of a candidate (the person or vehicle that covered its place most) is chosen, and
  the best view of each owner-label track near each candidate (its box times its score at
  its largest), with a crop of it: the event's `owner` and its picture.

Background candidates get track ids of their own range, `BACKGROUND_ID_BASE + n`: they
are positive like the tracker's (users see `object#…`), and the tracker, counting from 1
per camera, never reaches them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.geometry import box_iou, box_overlap_of_first
from edge_agent.core.types import EventObject, OwnerSighting
from edge_agent.pipeline.rules.base import Scene
from edge_agent.pipeline.rules.zones import Box

Path = Literal["detector", "background"]
BACKGROUND_ID_BASE = 1_000_000_000  # background objects' ids: 1 000 000 001 and up
VANISHED_HOLD_S = 60.0  # a place a left object vanished from stays known this long
VANISHED_IOU = 0.2  # a region overlapping a vanished place this much (IoU) ...
VANISHED_COVER = 0.5  # ... or lying this much inside it is what the object left behind
OWNER_LOOKBACK_S = 10.0  # how far back the owner is looked for
NEAR_MARGIN = 0.25  # an owner-label box, widened by this share of its height, "is near" an object
OWNER_CROP_PX = 192  # an owner crop's long side at most (pixels)
VIEW_EVERY_S = 0.5  # a view (with a crop) of each owner-label track is kept this often
CROP_MARGIN = 0.1  # an owner crop's margin around the box, as a share of the box's size


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
    appended and trimmed per frame without a loop over the history; and, per candidate and
    owner-label track seen near it, the best view of that track (`see`, `best`)."""

    def __init__(self) -> None:
        self._ts = np.zeros(0, np.float64)
        self._ids = np.zeros(0, np.int64)
        self._boxes = np.zeros((0, 4), np.float32)
        self._best: dict[tuple[str, int], OwnerSighting] = {}
        self._views: dict[int, list[OwnerSighting]] = {}  # per track: a view each VIEW_EVERY_S
        self._near: dict[tuple[str, int], tuple[float, float]] = {}  # first and last seen near

    def see(
        self, scene: Scene, owner_idx: np.ndarray, candidates: list[Static], area: Box | None = None
    ) -> None:
        """Keep recent views of every owner-label track in `area` (one each `VIEW_EVERY_S`, with a
        crop) and, for each candidate whose owner is near it now, that owner's best view near it so
        far (the largest box times its score: a near, whole, sharp view). A view far from the
        rule's zone can never be near an object in it: `area` keeps memory to the people there."""
        now = scene.media_s
        keys = {c.key for c in candidates}
        self._best = {k: v for k, v in self._best.items() if k[0] in keys}
        self._near = {k: v for k, v in self._near.items() if k[0] in keys}
        self._views = {
            t: [v for v in views if now - v.media_s <= OWNER_LOOKBACK_S] for t, views in self._views.items()
        }
        self._views = {t: views for t, views in self._views.items() if views}
        if len(owner_idx) == 0:
            return
        dets = scene.dets
        assert dets.track_id is not None
        boxes = dets.xyxy[owner_idx].astype(np.float32).reshape(-1, 4)
        inside = (
            box_overlap_of_first(boxes, np.array([area], np.float32))[:, 0] > 0.0
            if area is not None
            else np.ones(len(boxes), bool)
        )
        for j, i in enumerate(owner_idx.tolist()):
            if not inside[j]:
                continue
            tid = int(dets.track_id[i])
            views = self._views.setdefault(tid, [])
            if not views or now - views[-1].media_s >= VIEW_EVERY_S:
                views.append(self._view(scene, i, boxes[j]))
        owned = [c for c in candidates if c.owner is not None]
        if not owned:
            return
        ids = dets.track_id[owner_idx]
        for c in owned:
            hit = np.flatnonzero(ids == c.owner)
            if len(hit) == 0:
                continue
            j = int(hit[0])
            if (
                not box_overlap_of_first(boxes[j : j + 1], np.array([_widened(c.box)], np.float32))[0, 0]
                > 0.0
            ):
                continue
            key = (c.key, int(ids[j]))
            self._near[key] = (self._near.get(key, (now, now))[0], now)
            prev = self._best.get(key)
            if prev is None or _quality(prev) < float(_area(boxes[j]) * dets.score[owner_idx[j]]):
                self._best[key] = self._view(scene, int(owner_idx[j]), boxes[j])

    @staticmethod
    def _view(scene: Scene, i: int, box: np.ndarray) -> OwnerSighting:
        frame = scene.frame
        assert scene.dets.track_id is not None
        return OwnerSighting(
            track_id=int(scene.dets.track_id[i]),
            label=scene.label_of(i),
            xyxy=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            frame_size=(frame.width, frame.height),
            media_s=frame.media_s,
            wall_ts=frame.wall_ts,
            crop=owner_crop(frame.image, box),
            score=float(scene.dets.score[i]),
        )

    def claim(self, key: str, box: Box, now: float) -> int | None:
        """The owner of candidate `key` at `box` (`owner_for`); its best recent view near `box` and
        when it was first and last near there (from the history) are kept for the candidate."""
        owner = self.owner_for(box, now)
        if owner is None:
            return None
        wide = np.array([_widened(box)], np.float32)
        mine = (self._ids == owner) & (box_overlap_of_first(self._boxes, wide)[:, 0] > 0.0)
        if mine.any():
            ts = self._ts[mine]
            first, last = self._near.get((key, owner), (float(ts.min()), float(ts.max())))
            self._near[(key, owner)] = (min(first, float(ts.min())), max(last, float(ts.max())))
        views = [
            v
            for v in self._views.get(owner, [])
            if box_overlap_of_first(np.array([v.xyxy], np.float32), wide)[0, 0] > 0.0
        ]
        if views:
            best = max(views, key=_quality)
            prev = self._best.get((key, owner))
            if prev is None or _quality(prev) < _quality(best):
                self._best[(key, owner)] = best
        return owner

    def best(self, key: str, track_id: int | None) -> OwnerSighting | None:
        """The best view of track `track_id` near candidate `key`, if it was seen near it."""
        if track_id is None:
            return None
        found = self._best.get((key, track_id))
        if found is None:
            return None
        arrived, left = self._near.get((key, track_id), (found.media_s, found.media_s))
        return dataclasses.replace(found, arrived_s=arrived, left_s=left)

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
        cover = box_overlap_of_first(np.array([_widened(box)]), boxes)[0]
        ok = (cover > 0.0) & (now - ts <= OWNER_LOOKBACK_S)
        if not ok.any():
            return None
        cand = np.flatnonzero(ok)
        # the largest cover, then the latest time, then the first stored
        order = np.lexsort((cand, -ts[cand], -cover[cand]))
        return int(ids[cand[order[0]]])


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _quality(view: OwnerSighting) -> float:
    """How good a view of an owner is: its box's area times its score (near, whole, sharp)."""
    return _area(np.array(view.xyxy)) * view.score


def _widened(box: Box) -> Box:
    w, h = box[2] - box[0], box[3] - box[1]
    return (box[0] - w / 2, box[1] - h / 2, box[2] + w / 2, box[3] + h / 2)


def owner_crop(image: npt.NDArray[np.uint8], box: np.ndarray) -> npt.NDArray[np.uint8]:
    """The owner's box (with a margin of `CROP_MARGIN` of its size) cut from `image`, its long side
    brought down to `OWNER_CROP_PX` at most; a copy, so the frame can go."""
    h, w = image.shape[:2]
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    x1, y1 = max(int(box[0] - CROP_MARGIN * bw), 0), max(int(box[1] - CROP_MARGIN * bh), 0)
    x2, y2 = min(int(box[2] + CROP_MARGIN * bw) + 1, w), min(int(box[3] + CROP_MARGIN * bh) + 1, h)
    part = image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)]
    scale = OWNER_CROP_PX / max(part.shape[0], part.shape[1])
    if scale < 1.0:
        size = (max(1, round(part.shape[1] * scale)), max(1, round(part.shape[0] * scale)))
        return np.asarray(cv2.resize(part, size, interpolation=cv2.INTER_AREA), np.uint8)
    return part.copy()


def near_owner(box: Box, owner_boxes: np.ndarray) -> bool:
    """Whether an owner-label box of this frame (widened by NEAR_MARGIN of its height) touches `box`."""
    if len(owner_boxes) == 0:
        return False
    margin = NEAR_MARGIN * (owner_boxes[:, 3] - owner_boxes[:, 1])
    wide = owner_boxes.copy()
    wide[:, 0] -= margin
    wide[:, 2] += margin
    return bool((box_overlap_of_first(np.array([box]), wide) > 0.0).any())
