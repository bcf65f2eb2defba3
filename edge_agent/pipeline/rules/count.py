"""`count`: distinct tracks of `labels` entering a zone (or crossing a line) per `interval_s`.

Not an incident: the rule never starts events. It keeps one aggregate per interval and
hands it over (`take_reports`) when the interval closes; the pipeline gives it to the
`CountSink` (published retained on `counts/{camera}/{rule}`, see docs/rules.md).

- Zone: a track counts once per interval when it becomes a member of the zone (the zone
  inertia of `zones.py`: 2 frames inside), including one first seen inside. Re-entering
  in the same interval does not count again. With `dwell_bins_s` the time each track
  stayed (entering to leaving) goes into a histogram of the interval it left in.
- Line: a track counts once per interval and direction when it crosses (the shared
  `crossing.LineCrossing`, as `line_cross` uses it); `directions` has `in` and `out`, `count` is their sum.

Intervals are aligned to the clock of the frames' `wall_ts`: `floor(ts / interval_s)`
(live: the wall clock, so hourly counts run from the full hour; replay: `--start-time`
plus media time). An interval in which no frame was analysed (camera offline) gives no
report: zero would be a claim nobody measured. The running interval is checkpointed on
each change so a restart resumes it (`resume`); counts made before the restart add to
those after (track ids are not kept across a restart: a person inside the zone while
the agent restarts is counted again).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.core.counts import CountReport
from edge_agent.pipeline.rules.base import Observation, RuleKindSpec, Scene, select, selected
from edge_agent.pipeline.rules.crossing import LineCrossing
from edge_agent.pipeline.rules.zones import ZoneMembership


class CountRule(RuleConfigBase):
    kind: Literal["count"]
    zone: str | None = None
    line: str | None = None
    interval_s: float = Field(3600.0, gt=0, description="Seconds per aggregate, aligned to the clock")
    dwell_bins_s: list[float] | None = Field(
        None, description="Edges of a dwell histogram in seconds (zones only), ascending"
    )

    @model_validator(mode="after")
    def _zone_or_line(self) -> CountRule:
        if (self.zone is None) == (self.line is None):
            raise ValueError(f"rule {self.id!r}: a count rule needs exactly one of zone or line")
        if self.dwell_bins_s is not None:
            if self.line is not None:
                raise ValueError(f"rule {self.id!r}: dwell_bins_s needs a zone, not a line")
            if any(b <= a for a, b in zip(self.dwell_bins_s, self.dwell_bins_s[1:], strict=False)):
                raise ValueError(f"rule {self.id!r}: dwell_bins_s must be ascending")
        return self


Resume = Callable[[float], Mapping[str, Any] | None]


class Count:
    def __init__(self, rule: CountRule, cam: CameraConfig, min_score: float) -> None:
        self.rule = rule
        self.camera = cam.id
        self.labels = list(rule.labels) if rule.labels is not None else ["person"]
        self.min_score = min_score
        self.interval_s = rule.interval_s
        self.bins = tuple(rule.dwell_bins_s) if rule.dwell_bins_s is not None else None
        self.zone = ZoneMembership(cam.zones[rule.zone].polygon) if rule.zone is not None else None
        self.line = LineCrossing(cam.lines[rule.line].points) if rule.line is not None else None
        self.resume: Resume | None = None  # set by the pipeline when its sink keeps state
        self._start: float | None = None
        self._offset = 0.0  # wall_ts - media_s of the frames
        self._last_media = 0.0
        self._members: dict[int, float] = {}
        self._ready: list[CountReport] = []
        self._dirty = False
        self._reset(None)

    # --- interval state --------------------------------------------------------

    def _reset(self, base: Mapping[str, Any] | None) -> None:
        self._counted: set[int] = set()
        self._crossed: dict[str, set[int]] = {"in": set(), "out": set()}
        self._by_label: dict[str, int] = {}
        self._base_count = 0
        self._base_dirs = {"in": 0, "out": 0}
        self._dwell = [0] * (len(self.bins) + 1) if self.bins is not None else []
        if base:
            self._base_count = int(base.get("count", 0))
            self._by_label = {str(k): int(v) for k, v in dict(base.get("by_label") or {}).items()}
            dirs = base.get("directions") or {}
            self._base_dirs = {d: int(dirs.get(d, 0)) for d in ("in", "out")}
            dwell = base.get("dwell") or {}
            if self.bins is not None and len(dwell.get("counts", [])) == len(self._dwell):
                self._dwell = [int(c) for c in dwell["counts"]]

    def _report(self, end_ts: float, complete: bool, media_s: float) -> CountReport:
        assert self._start is not None
        dirs = None
        if self.line is not None:
            dirs = {d: self._base_dirs[d] + len(self._crossed[d]) for d in ("in", "out")}
            count = dirs["in"] + dirs["out"]
        else:
            count = self._base_count + len(self._counted)
        return CountReport(
            camera=self.camera,
            rule=self.rule.id,
            zone=self.rule.zone,
            line=self.rule.line,
            labels=tuple(self.labels),
            interval_s=self.interval_s,
            interval_start_ts=self._start,
            interval_end_ts=end_ts,
            media_s=media_s,
            complete=complete,
            count=count,
            by_label=dict(self._by_label),
            directions=dirs,
            dwell_bins_s=self.bins,
            dwell_counts=tuple(self._dwell) if self.bins is not None else None,
            emitted_ts=media_s + self._offset,
        )

    def _roll(self, wall_ts: float) -> None:
        start = math.floor(wall_ts / self.interval_s + 1e-9) * self.interval_s
        if self._start is None:
            self._start = start
            self._reset(self.resume(start) if self.resume is not None else None)
            return
        if start <= self._start:
            return
        end = self._start + self.interval_s
        self._ready.append(self._report(end, True, end - self._offset))
        self._start = start
        self._reset(None)
        self._dirty = True

    # --- update ------------------------------------------------------------------

    def update(self, scene: Scene) -> list[Observation]:
        frame = scene.frame
        self._offset = frame.wall_ts - frame.media_s
        self._last_media = frame.media_s
        self._roll(frame.wall_ts)
        idx = select(scene, self.labels, self.min_score)
        if self.zone is not None:
            self._zone(scene, idx)
        else:
            self._line(scene, idx)
        return []

    def _add_label(self, scene: Scene, i: int) -> None:
        label = scene.label_of(i)
        self._by_label[label] = self._by_label.get(label, 0) + 1
        self._dirty = True

    def _zone(self, scene: Scene, idx: np.ndarray) -> None:
        assert self.zone is not None
        _, track_ids, members = self.zone.update_scene(scene, idx)
        for i, tid in zip(idx.tolist(), track_ids.tolist(), strict=True):
            if tid in members and tid not in self._members and tid not in self._counted:
                self._counted.add(tid)
                self._add_label(scene, int(i))
        if self.bins is not None:
            for tid, since in self._members.items():
                if tid not in members:
                    dwell = scene.media_s - since
                    self._dwell[int(np.searchsorted(self.bins, dwell, side="right"))] += 1
                    self._dirty = True
        self._members = dict(members)

    def _line(self, scene: Scene, idx: np.ndarray) -> None:
        assert self.line is not None
        for c in self.line.update(selected(scene, idx), scene.frame.width, scene.frame.height):
            if c.track_id not in self._crossed[c.direction]:
                self._crossed[c.direction].add(c.track_id)
                self._add_label(scene, int(idx[c.row]))

    # --- what the pipeline collects -------------------------------------------------

    def take_reports(self) -> list[CountReport]:
        """Intervals closed since the last call."""
        out, self._ready = self._ready, []
        return out

    def take_checkpoint(self) -> CountReport | None:
        """The running interval if its counts changed since the last call."""
        if not self._dirty or self._start is None:
            return None
        self._dirty = False
        return self._report(self._start + self.interval_s, False, self._last_media)

    def flush(self, media_s: float) -> list[CountReport]:
        """Closed intervals plus the running one, cut short (the source ended or the agent stops)."""
        out = self.take_reports()
        if self._start is not None:
            out.append(self._report(self._start + self.interval_s, False, media_s))
        return out


def _build(rule: CountRule, cam: CameraConfig, min_score: float) -> Count:
    return Count(rule, cam, min_score)


KIND = RuleKindSpec("count", CountRule, _build)
