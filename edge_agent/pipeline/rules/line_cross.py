"""`line_cross`: a track's anchor crosses the line in `direction`.

Direction: `in` is crossing from the left of the line to its right, as seen
walking along it from its first point to its second. For a line drawn left to
right across the picture that is moving down the picture (towards a camera
that looks down the street); `out` is the reverse. Each crossing is an
instant event: one `start`, no `end`.

The side test with its dead band (a person lingering on the line with a
jittering box never counts twice) is the shared building block
`crossing.LineCrossing`, which `count` uses too.
"""

from __future__ import annotations

from typing import Literal

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.pipeline.rules.base import (
    Observation,
    RuleKindSpec,
    Scene,
    line_points,
    object_refs,
    select,
    selected,
)
from edge_agent.pipeline.rules.crossing import LineCrossing


class LineCrossRule(RuleConfigBase):
    kind: Literal["line_cross"]
    line: str
    direction: Literal["in", "out", "any"] = "any"


class LineCross:
    def __init__(self, rule: LineCrossRule, points: list[tuple[float, float]], min_score: float) -> None:
        self.labels = rule.labels if rule.labels is not None else ["person"]
        self.min_score = min_score
        self.direction = rule.direction
        self.line = LineCrossing(points)
        self._count = 0

    def update(self, scene: Scene) -> list[Observation]:
        idx = select(scene, self.labels, self.min_score)
        frame = scene.frame
        # the rules on one line (`in` and `out`) measure the frame once; each keeps its own sides
        key = ("line", self.line.key, frame.width, frame.height, idx.dtype.str, idx.tobytes())
        view = scene.shared.get(key)
        if view is None:
            view = scene.shared[key] = self.line.measure(selected(scene, idx), frame.width, frame.height)
        crossings = self.line.advance(view)
        out: list[Observation] = []
        for c in crossings:
            if self.direction not in ("any", c.direction):
                continue
            self._count += 1
            out.append(
                Observation(
                    key=f"t{c.track_id}-{self._count}",
                    since_s=scene.media_s,
                    objects=object_refs(scene, [int(idx[c.row])]),
                    instant=True,
                    details={"direction": c.direction},
                )
            )
        return out


def _build(rule: LineCrossRule, cam: CameraConfig, min_score: float) -> LineCross:
    return LineCross(rule, line_points(rule, cam), min_score)


KIND = RuleKindSpec("line_cross", LineCrossRule, _build)
