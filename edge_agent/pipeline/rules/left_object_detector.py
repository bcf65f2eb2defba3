"""`left_object`'s detector path: tracked objects of a left-object class that stay still.

Each object of `labels` is followed by its own static candidate in the shared store
(`static_store.py`), matched by track id and, across track id changes or detection gaps
(a passer-by stands in front of it), by box overlap, for up to `LOST_S` seconds. It
fires once it has stood still (its centre within `STILL_MOTION` of its size of where it
stopped) for `min_static_s` and no track of `owner_labels` is near it. `details` says
`{"owner_track": id, "path": "detector"}`.

A candidate goes when its object is gone: unseen for `LOST_S`, or its spot hit by a
ghost of the background model. When an object that had stood still for `SETTLED_S` goes,
or is carried off, the spot it left is remembered in the store as a place an object
vanished from.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.geometry import box_iou
from edge_agent.pipeline.rules.background import Region
from edge_agent.pipeline.rules.base import Observation, Scene, object_refs, select
from edge_agent.pipeline.rules.static_store import OwnerHistory, Static, StaticStore, near_owner
from edge_agent.pipeline.rules.zones import Box, PixelPolygon, match_followed

STILL_MOTION = 0.5  # largest drift of a still object's centre, in object sizes (max of w, h)
MATCH_IOU = 0.3  # least box IoU that continues a candidate without its track id
LOST_S = 6.0  # a candidate unseen this long is gone (the object was removed)
UNSEEN_START_S = 1.0  # an incident only starts on an object seen this recently
ZONE_TOLERANCE = 0.25  # an anchor this far outside the zone (in object heights) still counts
GHOST_IOU = 0.2  # a ghost overlapping a candidate this much means its object went
SETTLED_S = 5.0  # an object still this long that is carried off leaves a vanished place


def centre(b: Box) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)


def size(b: Box) -> float:
    return max(b[2] - b[0], b[3] - b[1], 1.0)


def hit_by_ghost(box: Box, ghosts: list[Region]) -> bool:
    if not ghosts:
        return False
    ious = box_iou(np.array([box]), np.array([g.xyxy for g in ghosts]))[0]
    return bool((ious >= GHOST_IOU).any())


def removed(keys: set[str]) -> list[Observation]:
    """End observations for incidents whose object went away."""
    return [
        Observation(key=k, since_s=0.0, objects=(), details={"ended_by": "removed"}, end=True)
        for k in sorted(keys)
    ]


class DetectorPath:
    def __init__(
        self,
        labels: list[str],
        min_score: float,
        min_static_s: float,
        zone: PixelPolygon,
        store: StaticStore,
        owners: OwnerHistory,
    ) -> None:
        self.labels = labels
        self.min_score = min_score
        self.min_static_s = min_static_s
        self.zone = zone
        self.store = store
        self.owners = owners
        self._holding: set[str] = set()

    def in_zone(self, box: Box, scene: Scene) -> bool:
        return self.zone.holds_anchor(box, scene.frame.width, scene.frame.height, ZONE_TOLERANCE)

    def update(self, scene: Scene, owner_boxes: np.ndarray, ghosts: list[Region]) -> list[Observation]:
        now = scene.media_s
        idx = select(scene, self.labels, self.min_score) if self.labels else np.zeros(0, np.intp)
        cands = self.store.of("detector")
        free = list(range(len(cands)))
        for ref in object_refs(scene, idx):
            match = match_followed(ref, cands, free, MATCH_IOU)  # type: ignore[arg-type]
            if match is None:
                key, _ = self.store.new_key("o")
                cand = Static(key, "detector", ref.track_id, ref.xyxy, ref.xyxy, now, now, ref=ref)
                cand.owner = self.owners.claim(cand.key, ref.xyxy, now)
                self.store.add(cand)
                continue
            free.remove(match)
            cand = cands[match]
            cand.ref, cand.track_id, cand.box, cand.last_seen_s = ref, ref.track_id, ref.xyxy, now
            (cx, cy), (sx, sy) = centre(ref.xyxy), centre(cand.still_box)
            drift = float(np.hypot(cx - sx, cy - sy))
            at_spot = float(box_iou(np.array([ref.xyxy]), np.array([cand.still_box]))[0, 0]) >= MATCH_IOU
            if drift > STILL_MOTION * size(cand.still_box) and not at_spot:
                # it moves: carried (in, away, or picked up again); a new still period begins
                if now - cand.still_since_s >= SETTLED_S:
                    self.store.forget_place([cand.still_box], now)
                cand.still_box, cand.still_since_s = ref.xyxy, now
                cand.owner = self.owners.claim(cand.key, ref.xyxy, now)
            elif cand.owner is None:
                cand.owner = self.owners.claim(cand.key, ref.xyxy, now)
        gone = [c for c in cands if now - c.last_seen_s > LOST_S or hit_by_ghost(c.still_box, ghosts)]
        self.store.drop(gone)
        self.store.forget_place(
            (c.still_box for c in gone if c.last_seen_s - c.still_since_s >= SETTLED_S), now
        )

        out: list[Observation] = []
        for cand in self.store.of("detector"):
            assert cand.ref is not None
            if now - cand.still_since_s < self.min_static_s or not self.in_zone(cand.still_box, scene):
                continue
            if cand.key not in self._holding and (
                now - cand.last_seen_s > UNSEEN_START_S or near_owner(cand.ref.xyxy, owner_boxes)
            ):
                continue  # only an object seen now, with nobody at it, starts an incident
            out.append(
                Observation(
                    key=cand.key,
                    since_s=cand.still_since_s,
                    objects=(cand.ref,),
                    details={"owner_track": cand.owner, "path": "detector"},
                    owner=self.owners.best(cand.key, cand.owner),
                )
            )
        held = {o.key for o in out}
        out.extend(removed(self._holding - held))
        self._holding = held
        return out
