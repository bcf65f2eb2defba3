"""`vendor`: a person stays in the zone with the things of a stall beside them.

A person whose anchor (bottom centre) is in the zone and drifts at most
`max_motion` of their height from where they stopped is *settled*; once
settled for `min_dwell_s` with at least one object of `items` (umbrella,
chair, table, ...) within `reach` person heights (distance between box
centres), the incident holds. It names the person first, then the items, and
`details` lists the item labels.

A settled person is followed by a *spot*: matched by track id and, when the
tracker gives the person a new id after a gap (a bus passed in front), by box
overlap, for up to `LOST_S` seconds. Items seen near the spot in the last
`ITEM_HOLD_S` seconds still count, so one missed detection of the umbrella
does not end the incident. A person waiting alone never fires; neither does
someone walking through with an umbrella (never settled). Durations are
seconds of media time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.core.types import EventObject
from edge_agent.pipeline.rules.base import (
    Observation,
    RuleKindSpec,
    Scene,
    object_refs,
    select,
    zone_polygon,
)
from edge_agent.pipeline.rules.zones import Box, PixelPolygon, match_followed

MATCH_IOU = 0.3  # least IoU that continues a spot under a new track id
LOST_S = 8.0  # a spot without its person this long is gone
ITEM_HOLD_S = 10.0  # an item seen near the person within this long still counts
ZONE_TOLERANCE = 0.1  # an anchor this far outside the zone (in person heights) still counts


@dataclass
class _Spot:
    key: str
    ref: EventObject
    track_id: int
    anchor: tuple[float, float]
    since_s: float
    last_seen_s: float
    items: dict[int, tuple[float, EventObject]] = field(default_factory=dict)


def _anchor(b: Box) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2.0, b[3])


DEFAULT_VENDOR_ITEMS = ["umbrella", "chair", "dining table", "bench", "bicycle", "motorcycle", "truck"]


class VendorRule(RuleConfigBase):
    kind: Literal["vendor"]
    zone: str
    min_dwell_s: float = Field(120.0, gt=0)
    items: list[str] = Field(default_factory=lambda: list(DEFAULT_VENDOR_ITEMS))
    reach: float = Field(1.5, gt=0, description="How far items may be, in person heights")
    max_motion: float = Field(1.0, gt=0, description="Largest drift of the person, in person heights")


class Vendor:
    def __init__(self, rule: VendorRule, polygon: list[tuple[float, float]], min_score: float) -> None:
        self.labels = list(rule.labels) if rule.labels is not None else ["person"]
        self.items = list(rule.items)
        self.min_score = min_score
        self.min_dwell_s = rule.min_dwell_s
        self.reach = rule.reach
        self.max_motion = rule.max_motion
        self.zone = PixelPolygon(polygon)
        self._spots: list[_Spot] = []
        self._next = 0

    def _in_zone(self, box: Box, scene: Scene) -> bool:
        return self.zone.holds_anchor(box, scene.frame.width, scene.frame.height, ZONE_TOLERANCE)

    def update(self, scene: Scene) -> list[Observation]:
        now = scene.media_s
        people = object_refs(scene, select(scene, self.labels, self.min_score))
        items = object_refs(scene, select(scene, self.items, self.min_score))
        free = list(range(len(self._spots)))
        for ref in people:
            if not self._in_zone(ref.xyxy, scene):
                continue
            match = match_followed(ref, self._spots, free, MATCH_IOU)
            if match is None:
                self._next += 1
                spot = _Spot(f"v{self._next}", ref, ref.track_id, _anchor(ref.xyxy), now, now)
                self._spots.append(spot)
            else:
                free.remove(match)
                spot = self._spots[match]
                spot.ref, spot.track_id, spot.last_seen_s = ref, ref.track_id, now
                ax, ay = _anchor(ref.xyxy)
                height = max(ref.xyxy[3] - ref.xyxy[1], 1.0)
                if np.hypot(ax - spot.anchor[0], ay - spot.anchor[1]) > self.max_motion * height:
                    spot.anchor, spot.since_s, spot.items = (ax, ay), now, {}
            self._near_items(spot, items, now)
        self._spots = [s for s in self._spots if now - s.last_seen_s <= LOST_S]

        out: list[Observation] = []
        for spot in self._spots:
            if now - spot.since_s < self.min_dwell_s:
                continue
            near = [ref for ts, ref in spot.items.values() if now - ts <= ITEM_HOLD_S]
            if not near:
                continue
            near.sort(key=lambda r: r.track_id)
            out.append(
                Observation(
                    key=spot.key,
                    since_s=spot.since_s,
                    objects=(spot.ref, *near),
                    details={"items": sorted({r.label for r in near})},
                )
            )
        return out

    def _near_items(self, spot: _Spot, items: tuple[EventObject, ...], now: float) -> None:
        p = spot.ref.xyxy
        px, py = (p[0] + p[2]) / 2.0, (p[1] + p[3]) / 2.0
        limit = self.reach * max(p[3] - p[1], 1.0)
        for item in items:
            b = item.xyxy
            if np.hypot((b[0] + b[2]) / 2.0 - px, (b[1] + b[3]) / 2.0 - py) <= limit:
                spot.items[item.track_id] = (now, item)
        for tid in [t for t, (ts, _) in spot.items.items() if now - ts > ITEM_HOLD_S]:
            del spot.items[tid]


def _build(rule: VendorRule, cam: CameraConfig, min_score: float) -> Vendor:
    return Vendor(rule, zone_polygon(rule, cam), min_score)


KIND = RuleKindSpec("vendor", VendorRule, _build)
