"""`crowd`: at least `min_count` objects of `labels` in the zone for `min_duration_s`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.pipeline.rules.base import Observation, RuleKindSpec, Scene, object_refs, select, zone_polygon
from edge_agent.pipeline.rules.zones import ZoneMembership


class CrowdRule(RuleConfigBase):
    kind: Literal["crowd"]
    zone: str
    min_count: int = Field(ge=1)
    min_duration_s: float = Field(0.0, ge=0)


class Crowd:
    def __init__(self, rule: CrowdRule, polygon: list[tuple[float, float]], min_score: float) -> None:
        self.labels = rule.labels if rule.labels is not None else ["person"]
        self.min_score = min_score
        self.min_count = rule.min_count
        self.min_duration_s = rule.min_duration_s
        self.zone = ZoneMembership(polygon)
        self._over_since_s: float | None = None

    def update(self, scene: Scene) -> list[Observation]:
        idx = select(scene, self.labels, self.min_score)
        _, track_ids, members = self.zone.update_scene(scene, idx)
        if len(members) < self.min_count:
            self._over_since_s = None
            return []
        if self._over_since_s is None:
            self._over_since_s = scene.media_s
        if scene.media_s - self._over_since_s < self.min_duration_s:
            return []
        present = [i for i, tid in zip(idx.tolist(), track_ids.tolist(), strict=True) if tid in members]
        scores = scene.dets.score.tolist()
        present.sort(key=lambda i: -scores[i])
        return [
            Observation(
                key="zone",
                since_s=self._over_since_s,
                objects=object_refs(scene, present),
                details={"count": len(members)},
            )
        ]


def _build(rule: CrowdRule, cam: CameraConfig, min_score: float) -> Crowd:
    return Crowd(rule, zone_polygon(rule, cam), min_score)


KIND = RuleKindSpec("crowd", CrowdRule, _build)
