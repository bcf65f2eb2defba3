"""`left_object`: something was put down in the zone and the one who brought it left.

Two evidence paths feed one rule:

- **detector path**: tracked objects of `labels` (default
  `DEFAULT_LEFT_OBJECT_LABELS`: backpack, handbag, suitcase, ...). Each object
  is followed by its own *static candidate*, matched by track id and, across
  track id changes or detection gaps (a passer-by stands in front of it), by
  box overlap, for up to `LOST_S` seconds. It fires once it has stood still
  (its centre within `STILL_MOTION` of its size of where it stopped) for
  `min_static_s` and no track of `owner_labels` is near it. `details` says
  `{"owner_track": id, "path": "detector"}`.
- **background path**: a dual background model (`background.py`) finds new
  static regions of at least `min_area` of the frame that no owner-label track
  box covers and no detected object explains. These are things the model has
  no class for (a garbage bag, a pile of rubble). Their object has label
  `"object"` and a *negative* track id, `-n` for region `n` of this rule
  (tracker ids are positive, so the two never clash); its `score` is the
  region's foreground confidence (`background.py`); `details` says
  `"path": "background"` and, when a detection of any class covers at least
  `DETECTOR_COVER` of the region, `"detector": {"label": ..., "score": ...}`
  (the one covering most).

`paths` (default `[detector, background]`) says which paths may fire the rule;
the older `background: false` means `paths: [detector]`. `labels: []` also
turns the detector path off.

**Removed, not left.** A region the background model classes as a ghost
(something that was there went away: `background.py`) never starts an
incident; if an open incident's object stood there, that incident ends now.
An open incident whose object is gone (its spot looks again as the background
did, it was seen carried off, or it was unseen for `LOST_S`) ends with
`details.ended_by: "removed"`.

The owner is the owner-label track whose box covered the object's place most
in the `OWNER_LOOKBACK_S` seconds before the object was first seen still (or
while it was being carried); it is `null` if nobody was seen there.

An incident holds while the object stays and ends when it is removed (unseen
for `LOST_S`, or seen moving away). All durations are seconds of media time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.core.geometry import box_iou, box_overlap_of_first
from edge_agent.core.types import EventObject
from edge_agent.pipeline.rules.background import DualBackground, Region
from edge_agent.pipeline.rules.base import (
    Observation,
    RuleKindSpec,
    Scene,
    object_refs,
    select,
    zone_polygon,
)
from edge_agent.pipeline.rules.zones import Box, PixelPolygon, match_followed

STILL_MOTION = 0.5  # largest drift of a still object's centre, in object sizes (max of w, h)
MATCH_IOU = 0.3  # least box IoU that continues a candidate without its track id
LOST_S = 6.0  # a candidate unseen this long is gone (the object was removed)
UNSEEN_START_S = 1.0  # an incident only starts on an object seen this recently
OWNER_LOOKBACK_S = 10.0  # how far back the owner is looked for
NEAR_MARGIN = 0.25  # an owner-label box, widened by this share of its height, "is near" an object
ZONE_TOLERANCE = 0.25  # an anchor this far outside the zone (in object heights) still counts
EXPLAIN_HOLD_S = 5.0  # a region covered by a person/vehicle box stays explained this long
EXPLAIN_COVER = 0.5  # share of a region a track box must cover to explain it
REGION_LOST_S = 5.0  # a background region unseen this long is gone
DETECTOR_COVER = 0.3  # share of a region a detection must cover to name it in details.detector
GHOST_IOU = 0.2  # a ghost overlapping an incident's object this much ends it
Path = Literal["detector", "background"]
STABLE_IOU = 0.5  # a region whose box overlaps where it settled less than this starts over


@dataclass
class _Candidate:
    key: str
    ref: EventObject
    track_id: int
    still_box: Box
    still_since_s: float
    last_seen_s: float
    owner: int | None = None


@dataclass
class _Region:
    key: str
    rid: int
    box: Box
    still_box: Box
    first_seen_s: float
    last_seen_s: float
    explained_s: float
    score: float = 0.0
    owner: int | None = None


def _centre(b: Box) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)


def _size(b: Box) -> float:
    return max(b[2] - b[0], b[3] - b[1], 1.0)


def _box(row: np.ndarray) -> Box:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


DEFAULT_LEFT_OBJECT_LABELS = ["backpack", "handbag", "suitcase", "bottle", "chair", "umbrella"]


class LeftObjectRule(RuleConfigBase):
    kind: Literal["left_object"]
    zone: str
    min_static_s: float = Field(30.0, gt=0)
    paths: list[Path] | None = Field(
        None, description="Evidence paths that may fire the rule (default: detector and background)"
    )
    background: bool | None = Field(
        None, description="Older spelling: false means paths [detector]; true the default"
    )
    min_area: float = Field(0.001, gt=0, lt=1, description="Smallest object, as a share of the frame area")
    owner_labels: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "truck", "bus"]
    )

    @model_validator(mode="after")
    def _one_spelling(self) -> LeftObjectRule:
        if self.paths is not None and self.background is not None:
            if ("background" in self.paths) != self.background:
                raise ValueError(
                    f"rule {self.id!r}: background: {str(self.background).lower()} contradicts "
                    f"paths: {self.paths}; give paths alone"
                )
        if self.paths is not None and not self.paths:
            raise ValueError(f"rule {self.id!r}: paths must name detector, background or both")
        return self

    def fire_paths(self) -> set[str]:
        """The evidence paths that may fire this rule (paths, else background, else both)."""
        if self.paths is not None:
            return set(self.paths)
        return {"detector", "background"} if self.background is not False else {"detector"}


class LeftObject:
    def __init__(self, rule: LeftObjectRule, polygon: list[tuple[float, float]], min_score: float) -> None:
        paths = rule.fire_paths()
        self.labels = list(rule.labels) if rule.labels is not None else list(DEFAULT_LEFT_OBJECT_LABELS)
        if "detector" not in paths:
            self.labels = []
        self.owner_labels = list(rule.owner_labels)
        self.min_score = min_score
        self.min_static_s = rule.min_static_s
        self.min_area = rule.min_area
        self.zone = PixelPolygon(polygon)
        self.background = DualBackground() if "background" in paths else None
        self.uses_thumbnail = self.background is not None  # `Scene.grey`, every frame
        self._cands: list[_Candidate] = []
        self._regions: list[_Region] = []
        # owner-label boxes of the last OWNER_LOOKBACK_S as flat arrays, oldest first:
        # appended and trimmed per frame without a loop over the history
        self._own_ts = np.zeros(0, np.float64)
        self._own_ids = np.zeros(0, np.int64)
        self._own_boxes = np.zeros((0, 4), np.float32)
        self._next = 0
        self._holding: set[str] = set()
        self._bg_holding: set[str] = set()

    # --- helpers -------------------------------------------------------------

    def _in_zone(self, box: Box, scene: Scene) -> bool:
        return self.zone.holds_anchor(box, scene.frame.width, scene.frame.height, ZONE_TOLERANCE)

    def _remember_owners(self, now: float, ids: np.ndarray, boxes: np.ndarray) -> None:
        keep = int(np.searchsorted(self._own_ts, now - OWNER_LOOKBACK_S, side="left"))
        self._own_ts = np.concatenate([self._own_ts[keep:], np.full(len(ids), now)])
        self._own_ids = np.concatenate([self._own_ids[keep:], ids.astype(np.int64)])
        self._own_boxes = np.concatenate([self._own_boxes[keep:], boxes.reshape(-1, 4).astype(np.float32)])

    def _owner_for(self, box: Box, now: float) -> int | None:
        """The owner-label track that covered `box` (widened) most in the recent past (latest on ties)."""
        ts, ids, boxes = self._own_ts, self._own_ids, self._own_boxes
        if len(ids) == 0:
            return None
        w, h = box[2] - box[0], box[3] - box[1]
        wide = np.array([[box[0] - w / 2, box[1] - h / 2, box[2] + w / 2, box[3] + h / 2]])
        cover = box_overlap_of_first(wide, boxes)[0]
        ok = (cover > 0.0) & (now - ts <= OWNER_LOOKBACK_S)
        if not ok.any():
            return None
        cand = np.flatnonzero(ok)
        # the largest cover, then the latest time, then the first stored (as the old loop chose)
        order = np.lexsort((cand, -ts[cand], -cover[cand]))
        return int(ids[cand[order[0]]])

    def _near_owner(self, box: Box, owner_boxes: np.ndarray) -> bool:
        if len(owner_boxes) == 0:
            return False
        margin = NEAR_MARGIN * (owner_boxes[:, 3] - owner_boxes[:, 1])
        wide = owner_boxes.copy()
        wide[:, 0] -= margin
        wide[:, 2] += margin
        return bool((box_overlap_of_first(np.array([box]), wide) > 0.0).any())

    def _new_key(self, prefix: str) -> tuple[str, int]:
        self._next += 1
        return f"{prefix}{self._next}", self._next

    # --- update --------------------------------------------------------------

    def update(self, scene: Scene) -> list[Observation]:
        now = scene.media_s
        dets = scene.dets
        assert dets.track_id is not None
        oidx = select(scene, self.owner_labels, self.min_score)
        owner_boxes = dets.xyxy[oidx].astype(np.float32).reshape(-1, 4)
        self._remember_owners(now, dets.track_id[oidx], owner_boxes)

        ghosts: list[Region] = []
        found: list[Region] = []
        if self.background is not None:
            for r in self.background.update(scene.frame.image, now, scene.grey):
                if r.removed:
                    ghosts.append(r)
                elif r.area >= self.min_area:
                    found.append(r)
        out = self._detector_path(scene, owner_boxes, ghosts)
        if self.background is not None:
            out.extend(self._background_path(scene, owner_boxes, found, ghosts))
        return out

    def _detector_path(
        self, scene: Scene, owner_boxes: np.ndarray, ghosts: list[Region]
    ) -> list[Observation]:
        now = scene.media_s
        idx = select(scene, self.labels, self.min_score) if self.labels else np.zeros(0, np.intp)
        refs = object_refs(scene, idx)
        free = list(range(len(self._cands)))
        for ref in refs:
            match = match_followed(ref, self._cands, free, MATCH_IOU)
            if match is None:
                key, _ = self._new_key("o")
                cand = _Candidate(key, ref, ref.track_id, ref.xyxy, now, now)
                cand.owner = self._owner_for(ref.xyxy, now)
                self._cands.append(cand)
                continue
            free.remove(match)
            cand = self._cands[match]
            cand.ref, cand.track_id, cand.last_seen_s = ref, ref.track_id, now
            (cx, cy), (sx, sy) = _centre(ref.xyxy), _centre(cand.still_box)
            drift = float(np.hypot(cx - sx, cy - sy))
            at_spot = float(box_iou(np.array([ref.xyxy]), np.array([cand.still_box]))[0, 0]) >= MATCH_IOU
            if drift > STILL_MOTION * _size(cand.still_box) and not at_spot:
                # it moves: carried (in, away, or picked up again); a new still period begins
                cand.still_box, cand.still_since_s = ref.xyxy, now
                cand.owner = self._owner_for(ref.xyxy, now)
            elif cand.owner is None:
                cand.owner = self._owner_for(ref.xyxy, now)
        gone = {c.key for c in self._cands if _hit_by_ghost(c.still_box, ghosts)}
        self._cands = [c for c in self._cands if now - c.last_seen_s <= LOST_S and c.key not in gone]

        out: list[Observation] = []
        for cand in self._cands:
            if now - cand.still_since_s < self.min_static_s:
                continue
            if not self._in_zone(cand.still_box, scene):
                continue
            if not self._held(cand.key) and (
                now - cand.last_seen_s > UNSEEN_START_S or self._near_owner(cand.ref.xyxy, owner_boxes)
            ):
                continue  # only an object seen now, with nobody at it, starts an incident
            out.append(
                Observation(
                    key=cand.key,
                    since_s=cand.still_since_s,
                    objects=(cand.ref,),
                    details={"owner_track": cand.owner, "path": "detector"},
                )
            )
        held = {o.key for o in out}
        out.extend(_removed(self._holding - held))
        self._holding = held
        return out

    def _held(self, key: str) -> bool:
        """Whether the incident of `key` held in the previous frame (a passer-by does not end it)."""
        return key in self._holding

    def _background_path(
        self, scene: Scene, owner_boxes: np.ndarray, found: list[Region], ghosts: list[Region]
    ) -> list[Observation]:
        assert self.background is not None
        now = scene.media_s
        cand_boxes = np.array([c.ref.xyxy for c in self._cands], dtype=np.float32).reshape(-1, 4)
        free = list(range(len(self._regions)))
        for reg in found:
            match = None
            if free:
                ious = box_iou(np.array([reg.xyxy]), np.array([self._regions[r].box for r in free]))[0]
                best = int(np.argmax(ious))
                if ious[best] >= 0.2:
                    match = free[best]
            if match is None:
                key, rid = self._new_key("r")
                region = _Region(key, rid, reg.xyxy, reg.xyxy, now, now, float("-inf"), reg.score)
                region.owner = self._owner_for(reg.xyxy, now)
                self._regions.append(region)
            else:
                free.remove(match)
                region = self._regions[match]
                if float(box_iou(np.array([reg.xyxy]), np.array([region.still_box]))[0, 0]) < STABLE_IOU:
                    # it changed shape: a ghost of something leaving, or still settling; start over
                    region.still_box, region.first_seen_s = reg.xyxy, now
                region.box, region.last_seen_s, region.score = reg.xyxy, now, reg.score
                if region.owner is None:
                    region.owner = self._owner_for(reg.xyxy, now)
            covered = box_overlap_of_first(np.array([reg.xyxy]), owner_boxes.reshape(-1, 4))
            claimed = box_overlap_of_first(np.array([reg.xyxy]), cand_boxes)
            if (covered >= EXPLAIN_COVER).any() or (claimed >= EXPLAIN_COVER).any():
                region.explained_s = now
        bg = self.background
        self._regions = [
            r
            for r in self._regions
            if now - r.last_seen_s <= REGION_LOST_S
            and not _hit_by_ghost(r.box, ghosts)
            # a held region not seen now whose spot looks as before: its object was taken away
            and not (r.key in self._bg_holding and r.last_seen_s < now and bg.matches_background(r.box))
        ]

        out: list[Observation] = []
        for region in self._regions:
            held = region.key in self._bg_holding
            if not held:
                if now - region.first_seen_s < self.min_static_s:
                    continue
                if now - region.explained_s < EXPLAIN_HOLD_S or not self._in_zone(region.box, scene):
                    continue
            ref = EventObject(
                track_id=-region.rid,
                label="object",
                score=region.score,
                xyxy=region.box,
                frame_size=(scene.frame.width, scene.frame.height),
            )
            details: dict[str, object] = {"owner_track": region.owner, "path": "background"}
            named = _best_detection(scene, region.box, self.min_score)
            if named is not None:
                details["detector"] = named
            out.append(
                Observation(key=region.key, since_s=region.first_seen_s, objects=(ref,), details=details)
            )
        holding = {o.key for o in out}
        out.extend(_removed(self._bg_holding - holding))
        self._bg_holding = holding
        return out


def _removed(keys: set[str]) -> list[Observation]:
    """End observations for incidents whose object went away."""
    return [
        Observation(key=k, since_s=0.0, objects=(), details={"ended_by": "removed"}, end=True)
        for k in sorted(keys)
    ]


def _hit_by_ghost(box: Box, ghosts: list[Region]) -> bool:
    if not ghosts:
        return False
    ious = box_iou(np.array([box]), np.array([g.xyxy for g in ghosts]))[0]
    return bool((ious >= GHOST_IOU).any())


def _best_detection(scene: Scene, box: Box, min_score: float) -> dict[str, object] | None:
    """The detection (any class) covering most of `box`, if it covers at least DETECTOR_COVER."""
    idx = select(scene, None, min_score)
    if len(idx) == 0:
        return None
    cover = box_overlap_of_first(np.array([box]), scene.dets.xyxy[idx].reshape(-1, 4))[0]
    best = int(np.lexsort((-scene.dets.score[idx], -cover))[0])
    if cover[best] < DETECTOR_COVER:
        return None
    i = int(idx[best])
    return {"label": scene.label_of(i), "score": round(float(scene.dets.score[i]), 4)}


def _build(rule: LeftObjectRule, cam: CameraConfig, min_score: float) -> LeftObject:
    return LeftObject(rule, zone_polygon(rule, cam), min_score)


KIND = RuleKindSpec("left_object", LeftObjectRule, _build)
