"""One `count` rule's aggregate for one interval: what goes on `counts/{camera}/{rule}`.

The payload is `mqtt/count.schema.json` (`eagleeye.count/1`). The `count` rule kind
(`pipeline/rules/count.py`) makes these; a `CountSink` (core/sink.py) takes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edge_agent.core.types import iso_utc

COUNT_SCHEMA = "eagleeye.count/1"


@dataclass(frozen=True)
class CountReport:
    """Distinct tracks that entered the zone (or crossed the line) in one interval.

    `interval_start_ts`/`interval_end_ts` are UNIX times aligned to `interval_s` (live: the
    wall clock; replay: `--start-time` plus media time). `complete` is false for an interval
    cut short (the video ended, the agent stopped) or a running checkpoint. `directions`
    (lines only) counts crossings per direction, `dwell_counts` (zones with `dwell_bins_s`)
    the dwell of tracks that left in this interval, one bin more than there are edges.
    """

    camera: str
    rule: str
    zone: str | None
    line: str | None
    labels: tuple[str, ...]
    interval_s: float
    interval_start_ts: float
    interval_end_ts: float
    media_s: float
    complete: bool
    count: int
    by_label: dict[str, int] = field(default_factory=dict)
    directions: dict[str, int] | None = None
    dwell_bins_s: tuple[float, ...] | None = None
    dwell_counts: tuple[int, ...] | None = None
    emitted_ts: float = 0.0

    def to_dict(self, site: str, device: str) -> dict[str, Any]:
        dwell = None
        if self.dwell_bins_s is not None and self.dwell_counts is not None:
            dwell = {"bins_s": list(self.dwell_bins_s), "counts": list(self.dwell_counts)}
        return {
            "schema": COUNT_SCHEMA,
            "site": site,
            "device": device,
            "camera": self.camera,
            "rule": self.rule,
            "zone": self.zone,
            "line": self.line,
            "labels": list(self.labels),
            "interval_start": iso_utc(self.interval_start_ts),
            "interval_end": iso_utc(self.interval_end_ts),
            "interval_s": self.interval_s,
            "complete": self.complete,
            "count": self.count,
            "by_label": dict(sorted(self.by_label.items())),
            "directions": dict(self.directions) if self.directions is not None else None,
            "dwell": dwell,
            "media_s": round(self.media_s, 3),
            "ts": iso_utc(self.emitted_ts),
        }

    def to_json(self, site: str, device: str) -> str:
        return json.dumps(self.to_dict(site, device), separators=(",", ":"), sort_keys=False)
