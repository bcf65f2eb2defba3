"""`line_cross`: a track's anchor crosses the line in `direction`.

Direction: `in` is crossing from the left of the line to its right, as seen
walking along it from its first point to its second. For a line drawn left to
right across the picture that is moving down the picture (towards a camera
that looks down the street); `out` is the reverse. Each crossing is an
instant event: one `start`, no `end`.

A track must sit at least `dead_band` of its own height (and 3 px) off the
line to count as being on a side, so a person lingering on the line with a
jittering box never counts twice.
"""

from __future__ import annotations

from typing import Literal

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.core.geometry import segments_intersect, side_of_line, to_pixels
from edge_agent.pipeline.rules.base import Observation, RuleKindSpec, Scene, line_points, object_refs, select


class LineCrossRule(RuleConfigBase):
    kind: Literal["line_cross"]
    line: str
    direction: Literal["in", "out", "any"] = "any"


class LineCross:
    dead_band = 0.15
    min_dead_band_px = 3.0

    def __init__(self, rule: LineCrossRule, points: list[tuple[float, float]], min_score: float) -> None:
        self.labels = rule.labels if rule.labels is not None else ["person"]
        self.min_score = min_score
        self.direction = rule.direction
        self.points = points
        # per track: (side, anchor where that side was last seen)
        self._side: dict[int, tuple[int, tuple[float, float]]] = {}
        self._count = 0

    def update(self, scene: Scene) -> list[Observation]:
        idx = select(scene, self.labels, self.min_score)
        dets = scene.dets[idx]
        assert dets.track_id is not None
        (ax, ay), (bx, by) = to_pixels(self.points, scene.frame.width, scene.frame.height).tolist()
        a, b = (ax, ay), (bx, by)
        anchors = dets.anchors
        length = max(((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5, 1e-6)
        dist = side_of_line(anchors, a, b) / length
        out: list[Observation] = []
        heights = dets.heights
        for j, tid in enumerate(dets.track_id.tolist()):
            if abs(dist[j]) < max(self.min_dead_band_px, self.dead_band * float(heights[j])):
                continue
            side = 1 if dist[j] > 0 else -1
            here = (float(anchors[j, 0]), float(anchors[j, 1]))
            prev = self._side.get(tid)
            self._side[tid] = (side, here)
            if prev is None or prev[0] == side or not segments_intersect(prev[1], here, a, b):
                continue
            direction = "in" if side > 0 else "out"
            if self.direction not in ("any", direction):
                continue
            self._count += 1
            out.append(
                Observation(
                    key=f"t{tid}-{self._count}",
                    since_s=scene.media_s,
                    objects=object_refs(scene, [int(idx[j])]),
                    instant=True,
                    details={"direction": direction},
                )
            )
        live = set(dets.track_id.tolist())
        if len(self._side) > 4 * max(len(live), 16):
            # forget tracks long gone so state stays bounded on a busy street
            self._side = {t: s for t, s in self._side.items() if t in live}
        return out


def _build(rule: LineCrossRule, cam: CameraConfig, min_score: float) -> LineCross:
    return LineCross(rule, line_points(rule, cam), min_score)


KIND = RuleKindSpec("line_cross", LineCrossRule, _build)
