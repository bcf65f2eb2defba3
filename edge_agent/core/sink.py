"""The sink protocol: where the pipeline hands each event (a JSONL file in replay, the outbox live)."""

from __future__ import annotations

from typing import Protocol

from edge_agent.core.types import Event


class EventSink(Protocol):
    """Accepts each event phase with its snapshot JPEG (start phase only, else None)."""

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None: ...

    def close(self) -> None: ...
