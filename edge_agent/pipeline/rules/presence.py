"""`presence`: an object of `labels` is in the zone, confirmed over a few frames.

One incident per zone, not per object: a night intrusion by three people is
one alert whose `objects` list the people, not three alerts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.pipeline.rules.base import Observation, RuleKindSpec, Scene, object_refs, select, zone_polygon
from edge_agent.pipeline.rules.zones import ZoneMembership


class PresenceRule(RuleConfigBase):
    kind: Literal["presence"]
    zone: str
    min_frames: int = Field(3, ge=1, description="Frames an object must be in the zone to count")


class Presence:
    def __init__(self, rule: PresenceRule, polygon: list[tuple[float, float]], min_score: float) -> None:
        self.labels = rule.labels if rule.labels is not None else ["person"]
        self.min_score = min_score
        self.zone = ZoneMembership(polygon, enter_frames=rule.min_frames)

    def update(self, scene: Scene) -> list[Observation]:
        idx = select(scene, self.labels, self.min_score)
        _, track_ids, members = self.zone.update_scene(scene, idx)
        if not members:
            return []
        present = [i for i, tid in zip(idx.tolist(), track_ids.tolist(), strict=True) if tid in members]
        scores = scene.dets.score.tolist()
        present.sort(key=lambda i: -scores[i])
        return [Observation(key="zone", since_s=min(members.values()), objects=object_refs(scene, present))]


def _build(rule: PresenceRule, cam: CameraConfig, min_score: float) -> Presence:
    return Presence(rule, zone_polygon(rule, cam), min_score)


KIND = RuleKindSpec("presence", PresenceRule, _build)
