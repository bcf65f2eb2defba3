"""`dwell`: one tracked object stays in the zone at least `min_dwell_s`.

With `stationary: true` the object must also barely move (parking,
loitering): its anchor may drift at most `max_motion` of its own height from
where the still period began, so a car waiting at a crossing for a few seconds
and driving on is never "parked" and a person pacing around is never
"stationary".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.core.types import Detections
from edge_agent.pipeline.rules.base import Observation, RuleKindSpec, Scene, object_refs, select, zone_polygon
from edge_agent.pipeline.rules.zones import ZoneMembership


@dataclass
class _Still:
    anchor: tuple[float, float]
    since_s: float


class DwellRule(RuleConfigBase):
    kind: Literal["dwell"]
    zone: str
    min_dwell_s: float = Field(gt=0)
    stationary: bool = False
    max_motion: float = Field(
        0.5, gt=0, description="stationary: largest drift of the anchor, in object heights"
    )


class Dwell:
    def __init__(self, rule: DwellRule, polygon: list[tuple[float, float]], min_score: float) -> None:
        self.labels = rule.labels if rule.labels is not None else ["person"]
        self.min_score = min_score
        self.min_dwell_s = rule.min_dwell_s
        self.stationary = rule.stationary
        self.max_motion = rule.max_motion
        self.zone = ZoneMembership(polygon)
        self._still: dict[int, _Still] = {}

    def update(self, scene: Scene) -> list[Observation]:
        idx = select(scene, self.labels, self.min_score)
        dets, track_ids, members = self.zone.update_scene(scene, idx)
        for tid in [t for t in self._still if t not in members]:
            del self._still[tid]
        idx_list = idx.tolist()
        out: list[Observation] = []
        for j, tid in enumerate(track_ids.tolist()):
            if tid not in members:
                continue
            since = members[tid]
            if self.stationary:
                since = self._still_since(tid, dets, j, since, scene.media_s)
            if scene.media_s - since >= self.min_dwell_s:
                out.append(
                    Observation(key=f"t{tid}", since_s=since, objects=object_refs(scene, [idx_list[j]]))
                )
        return out

    def _still_since(self, tid: int, dets: Detections, j: int, since: float, now_s: float) -> float:
        """When track `tid` (row `j` of `dets`, in the zone since `since`) began keeping still."""
        ax, ay = float(dets.anchors[j, 0]), float(dets.anchors[j, 1])
        still = self._still.get(tid)
        limit = self.max_motion * max(float(dets.xyxy[j, 3] - dets.xyxy[j, 1]), 1.0)
        if still is None or np.hypot(ax - still.anchor[0], ay - still.anchor[1]) > limit:
            still = self._still[tid] = _Still((ax, ay), now_s if still else since)
        return still.since_s


def _build(rule: DwellRule, cam: CameraConfig, min_score: float) -> Dwell:
    return Dwell(rule, zone_polygon(rule, cam), min_score)


KIND = RuleKindSpec("dwell", DwellRule, _build)
