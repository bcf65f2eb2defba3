"""The rule engine: builds each rule's kind and runs the event lifecycle.

Lifecycle of one incident (one `Observation.key` of one rule):
- `start` the first frame it holds while the rule is armed (schedule) and out
  of cooldown;
- `update` when its set of objects changes (at most every `CHANGE_UPDATE_S`)
  and at least every `HEARTBEAT_S` while it lasts;
- `end` the first frame it no longer holds, or when the schedule disarms the
  rule. Instant incidents (line crossings) only `start`.

`cooldown_s` is quiet time per rule: after an incident of the rule ends (an
instant one: starts), no new incident of that rule starts for `cooldown_s`;
one that still holds when the cooldown is over starts then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.core.counts import CountReport
from edge_agent.core.types import EventObject, OwnerSighting
from edge_agent.pipeline.events import EventDraft
from edge_agent.pipeline.rules.base import Aggregating, RuleKind, Scene
from edge_agent.pipeline.rules.registry import kind_named
from edge_agent.pipeline.rules.schedule import Schedule

HEARTBEAT_S = 60.0
CHANGE_UPDATE_S = 10.0


@dataclass
class _Active:
    since_s: float
    start_frame: int
    objects: tuple[EventObject, ...]
    last_emit_s: float
    details: dict[str, Any]
    instant: bool = False
    owner: OwnerSighting | None = None


class RuleRunner:
    """One rule on one camera: its kind's state plus the incidents it has open."""

    def __init__(self, rule: RuleConfigBase, kind: RuleKind, schedule: Schedule) -> None:
        self.rule = rule
        self.kind = kind
        self.schedule = schedule
        self.zone: str | None = getattr(rule, "zone", None)
        self.line: str | None = getattr(rule, "line", None)
        self.active: dict[str, _Active] = {}
        self._quiet_until_s = float("-inf")

    def _draft(self, phase: str, key: str, inc: _Active, media_s: float) -> EventDraft:
        return EventDraft(
            rule=self.rule.id,
            kind=self.rule.kind,
            severity=self.rule.severity,
            zone=self.zone,
            line=self.line,
            phase=phase,
            key=key,
            since_s=inc.since_s,
            media_s=media_s,
            start_frame=inc.start_frame,
            objects=inc.objects,
            instant=inc.instant,
            details=dict(inc.details),
            owner=inc.owner,
        )

    def step(self, scene: Scene) -> list[EventDraft]:
        observations = self.kind.update(scene)
        now = scene.media_s
        if not self.schedule.armed(scene.frame.wall_ts):
            observations = []
        out: list[EventDraft] = []
        seen: set[str] = set()
        for obs in observations:
            if obs.end:
                ended = self.active.pop(obs.key, None)
                if ended is not None:
                    ended.details = {**ended.details, **obs.details}
                    out.append(self._draft("end", obs.key, ended, now))
                    self._quiet_until_s = now + self.rule.cooldown_s
                continue
            seen.add(obs.key)
            inc = self.active.get(obs.key)
            if inc is None:
                if now < self._quiet_until_s:
                    continue
                inc = _Active(obs.since_s, scene.frame.index, obs.objects, now, dict(obs.details))
                inc.instant, inc.owner = obs.instant, obs.owner
                out.append(self._draft("start", obs.key, inc, now))
                if obs.instant:
                    self._quiet_until_s = now + self.rule.cooldown_s
                else:
                    self.active[obs.key] = inc
                continue
            changed = _ids(obs.objects) != _ids(inc.objects)
            if obs.objects:
                inc.objects = obs.objects
            inc.details = dict(obs.details)
            inc.owner = obs.owner if obs.owner is not None else inc.owner
            since_emit = now - inc.last_emit_s
            if since_emit >= HEARTBEAT_S or (changed and since_emit >= CHANGE_UPDATE_S):
                inc.last_emit_s = now
                out.append(self._draft("update", obs.key, inc, now))
        for key in [k for k in self.active if k not in seen]:
            inc = self.active.pop(key)
            out.append(self._draft("end", key, inc, now))
            self._quiet_until_s = now + self.rule.cooldown_s
        return out

    def close(self, media_s: float) -> list[EventDraft]:
        """End every open incident (the source ended or the agent stops)."""
        out = [self._draft("end", key, inc, media_s) for key, inc in self.active.items()]
        self.active.clear()
        return out


def _ids(objects: tuple[EventObject, ...]) -> tuple[int, ...]:
    return tuple(sorted(o.track_id for o in objects))


class RuleEngine:
    """Every rule of one camera."""

    def __init__(self, cam: CameraConfig, model_min_score: float, timezone: str = "UTC") -> None:
        self.runners: list[RuleRunner] = []
        for rule in cam.rules:
            spec = kind_named(rule.kind)
            if spec is None:
                raise ValueError(f"rule {rule.id!r}: kind {rule.kind!r} is not available in this build")
            min_score = rule.min_score if rule.min_score is not None else model_min_score
            self.runners.append(
                RuleRunner(rule, spec.build(rule, cam, min_score), Schedule(rule.windows(), timezone))
            )
        # asked every frame; a runtime-checkable Protocol's isinstance is slow, the kinds are fixed
        self._aggregating = [r.kind for r in self.runners if isinstance(r.kind, Aggregating)]

    def step(self, scene: Scene) -> list[EventDraft]:
        out: list[EventDraft] = []
        for runner in self.runners:
            out.extend(runner.step(scene))
        return out

    def close(self, media_s: float) -> list[EventDraft]:
        out: list[EventDraft] = []
        for runner in self.runners:
            out.extend(runner.close(media_s))
        return out

    def aggregating(self) -> list[Aggregating]:
        """The kinds that report per-interval aggregates (`count`), not incidents."""
        return list(self._aggregating)

    def take_counts(self) -> tuple[list[CountReport], list[CountReport]]:
        """Intervals closed in the last step, and checkpoints of running intervals that changed."""
        closed: list[CountReport] = []
        running: list[CountReport] = []
        for kind in self.aggregating():
            closed.extend(kind.take_reports())
            point = kind.take_checkpoint()
            if point is not None:
                running.append(point)
        return closed, running

    def close_counts(self, media_s: float) -> list[CountReport]:
        out: list[CountReport] = []
        for kind in self.aggregating():
            out.extend(kind.flush(media_s))
        return out

    def states(self) -> dict[str, int]:
        """Open incidents per rule id, for the annotated video and stats."""
        return {r.rule.id: len(r.active) for r in self.runners}
