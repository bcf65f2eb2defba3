"""Replay output: one event JSON object per line, in the order produced."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from edge_agent.core.sink import EventSink
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


class MemorySink:
    """Keeps events (and snapshots) in memory; for tests and tools."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.snapshots: dict[str, bytes] = {}

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

    def close(self) -> None:
        for s in self.sinks:
            s.close()
