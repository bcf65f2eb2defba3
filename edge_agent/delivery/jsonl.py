"""Replay output: one event JSON object per line, in the order produced."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from edge_agent.core.counts import CountReport
from edge_agent.core.sink import CountSink, EventSink
from edge_agent.core.types import Event


class JsonlSink:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO = self.path.open("w", encoding="utf-8", newline="\n")

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None:
        self._fh.write(event.to_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class CountsJsonlSink:
    """Replay's `--counts` file: one `eagleeye.count/1` object per line, each interval as it closes
    and the one the video cut short last (`complete: false`). Nothing is resumed: each replay
    starts from zero."""

    def __init__(self, path: str | Path, site: str, device: str) -> None:
        self.path = Path(path)
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.site, self.device = site, device
        self._fh: TextIO = self.path.open("w", encoding="utf-8", newline="\n")

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None:
        """Events are not this file's business."""

    def emit_count(self, report: CountReport) -> None:
        self._fh.write(report.to_json(self.site, self.device) + "\n")
        self._fh.flush()

    def checkpoint_count(self, report: CountReport) -> None:
        """A replay keeps no state across runs."""

    def resume_count(self, camera: str, rule: str, interval_start_ts: float) -> Mapping[str, Any] | None:
        return None

    def close(self) -> None:
        self._fh.close()


class MemorySink:
    """Keeps events (and snapshots, and count reports) in memory; for tests and tools."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.snapshots: dict[str, bytes] = {}
        self.counts: list[CountReport] = []

    def emit_count(self, report: CountReport) -> None:
        self.counts.append(report)

    def checkpoint_count(self, report: CountReport) -> None:
        pass

    def resume_count(self, camera: str, rule: str, interval_start_ts: float) -> Mapping[str, Any] | None:
        return None

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None:
        self.events.append(event)
        if snapshot_jpeg is not None:
            self.snapshots[event.event_id] = snapshot_jpeg

    def close(self) -> None:
        pass


class FanoutSink:
    """Gives every event to several sinks in turn."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None:
        for s in self.sinks:
            s.emit(event, snapshot_jpeg)

    def _counters(self) -> list[CountSink]:
        return [s for s in self.sinks if isinstance(s, CountSink)]

    def emit_count(self, report: CountReport) -> None:
        for s in self._counters():
            s.emit_count(report)

    def checkpoint_count(self, report: CountReport) -> None:
        for s in self._counters():
            s.checkpoint_count(report)

    def resume_count(self, camera: str, rule: str, interval_start_ts: float) -> Mapping[str, Any] | None:
        for s in self._counters():
            state = s.resume_count(camera, rule, interval_start_ts)
            if state is not None:
                return state
        return None

    def close(self) -> None:
        for s in self.sinks:
            s.close()
