"""`left_object`'s background path: new static regions no detector class names.

The dual background model (`background.py`) finds new static regions of at least
`min_area` of the frame; each is followed by a candidate in the shared store
(`static_store.py`). A region fires when it has kept its shape for `min_static_s`, lies
in the zone and no owner-label track box covered it (nor a detector-path candidate
claimed it) in the last `EXPLAIN_HOLD_S`: things the model has no class for (a garbage
bag, a pile of rubble). Its object has label `"object"`, a track id of its own range
(`static_store.BACKGROUND_ID_BASE + n`), the region's box (the object's extent: the
model merges an object's fragments and grows them to its edges) and, as `score`, the
region's foreground confidence; `details` says `"path": "background"` and, when a
detection of any class covers at least `DETECTOR_COVER` of the region,
`"detector": {"label": ..., "score": ...}` (the one covering most).

**Removed, not left.** A ghost (something that was there went away) never starts an
incident; a candidate under a ghost goes. A region where a left object vanished from
(the store's vanished places: the detector path's object carried off or lost, or this
path's object gone) is no new static thing either: the background model takes the
place's present look at once (`heal`), so the object's going never starts an incident.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.geometry import box_iou, box_overlap_of_first
from edge_agent.core.types import EventObject
from edge_agent.pipeline.rules.background import DualBackground, Region
from edge_agent.pipeline.rules.base import Observation, Scene, select
from edge_agent.pipeline.rules.left_object_detector import SETTLED_S, hit_by_ghost, removed
from edge_agent.pipeline.rules.static_store import BACKGROUND_ID_BASE, OwnerHistory, Static, StaticStore
from edge_agent.pipeline.rules.zones import Box, PixelPolygon

EXPLAIN_HOLD_S = 5.0  # a region covered by a person/vehicle box stays explained this long
EXPLAIN_COVER = 0.5  # share of a region a track box must cover to explain it
REGION_LOST_S = 5.0  # a background region unseen this long is gone
REGION_MATCH_IOU = 0.2  # least IoU that continues a region
DETECTOR_COVER = 0.3  # share of a region a detection must cover to name it in details.detector
STABLE_IOU = 0.5  # a region whose box overlaps where it settled less than this starts over
SAME_LOOK = 0.5  # a held region whose box looks as it did on fewer pixels than this share went
ZONE_TOLERANCE = 0.25  # an anchor this far outside the zone (in object heights) still counts


class BackgroundPath:
    def __init__(
        self,
        model: DualBackground,
        min_score: float,
        min_static_s: float,
        zone: PixelPolygon,
        store: StaticStore,
        owners: OwnerHistory,
    ) -> None:
        self.model = model
        self.min_score = min_score
        self.min_static_s = min_static_s
        self.zone = zone
        self.store = store
        self.owners = owners
        self._holding: set[str] = set()

    def _follow(self, scene: Scene, owner_boxes: np.ndarray, found: list[Region]) -> None:
        now = scene.media_s
        regions = self.store.of("background")
        free = list(range(len(regions)))
        for reg in found:
            if self.store.vanished_at(reg.xyxy, now):
                # what a left object left behind where it went: the place looks like this now
                self.model.heal(reg.xyxy)
                continue
            match = None
            if free:
                ious = box_iou(np.array([reg.xyxy]), np.array([regions[r].box for r in free]))[0]
                best = int(np.argmax(ious))
                if ious[best] >= REGION_MATCH_IOU:
                    match = free[best]
            if match is None:
                key, n = self.store.new_key("r")
                region = Static(key, "background", BACKGROUND_ID_BASE + n, reg.xyxy, reg.xyxy, now, now)
                region.score = reg.score
                region.owner = self.owners.claim(region.key, reg.xyxy, now)
                self.store.add(region)
            else:
                free.remove(match)
                region = regions[match]
                if float(box_iou(np.array([reg.xyxy]), np.array([region.still_box]))[0, 0]) < STABLE_IOU:
                    # it changed shape: a ghost of something leaving, or still settling; start over
                    region.still_box, region.still_since_s = reg.xyxy, now
                region.box, region.last_seen_s, region.score = reg.xyxy, now, reg.score
                if region.owner is None:
                    region.owner = self.owners.claim(region.key, reg.xyxy, now)
            covered = box_overlap_of_first(np.array([reg.xyxy]), owner_boxes.reshape(-1, 4))
            if (covered >= EXPLAIN_COVER).any() or self.store.claimed(reg.xyxy, "detector", EXPLAIN_COVER):
                region.explained_s = now

    def update(
        self, scene: Scene, owner_boxes: np.ndarray, found: list[Region], ghosts: list[Region]
    ) -> list[Observation]:
        now = scene.media_s
        self._follow(scene, owner_boxes, found)
        gone = [
            r
            for r in self.store.of("background")
            if now - r.last_seen_s > REGION_LOST_S
            or hit_by_ghost(r.box, ghosts)
            # a held region not seen now whose spot looks as before: its object was taken away
            or (r.key in self._holding and r.last_seen_s < now and self.model.matches_background(r.box))
            or self._changed(r, now)
        ]
        self.store.drop(gone)
        # an object that stood there unexplained (no person, no vehicle) leaves a vanished place
        self.store.forget_place((p for r in gone if self._settled(r) for p in {r.box, r.still_box}), now)
        out: list[Observation] = []
        for region in self.store.of("background"):
            if region.key not in self._holding:
                if now - region.still_since_s < self.min_static_s:
                    continue
                if now - region.explained_s < EXPLAIN_HOLD_S or not self._in_zone(region.box, scene):
                    continue
            if region.look is None:
                region.look, region.look_box = self.model.look(region.box), region.box
            ref = EventObject(
                track_id=region.track_id,
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
                Observation(
                    key=region.key,
                    since_s=region.still_since_s,
                    objects=(ref,),
                    details=details,
                    owner=self.owners.best(region.key, region.owner),
                )
            )
        holding = {o.key for o in out}
        out.extend(removed(self._holding - holding))
        self._holding = holding
        return out

    def _changed(self, r: Static, now: float) -> bool:
        """Whether a held region's place, with nobody in front of it, no longer looks as it did when
        its incident started: the object was taken away and what lies there now (a patch of
        ground it pressed, a remnant) is something else, which its going never makes an incident."""
        if r.key not in self._holding or r.look is None or r.explained_s == now:
            return False
        return self.model.same_look(r.look_box, r.look) < SAME_LOOK

    def _settled(self, r: Static) -> bool:
        return r.key in self._holding or (
            r.last_seen_s - r.still_since_s >= SETTLED_S and r.last_seen_s - r.explained_s >= EXPLAIN_HOLD_S
        )

    def _in_zone(self, box: Box, scene: Scene) -> bool:
        return self.zone.holds_anchor(box, scene.frame.width, scene.frame.height, ZONE_TOLERANCE)


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
