"""The sink protocol: where the pipeline hands each event (a JSONL file in replay, the outbox live)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from edge_agent.core.counts import CountReport
from edge_agent.core.types import Event


class EventSink(Protocol):
    """Accepts each event phase with its snapshot JPEG (start phase only, else None)."""

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class CountSink(Protocol):
    """Takes `count` rule aggregates (a sink may also be an `EventSink`).

    `emit_count` gets every closed interval (`complete`) and the cut-short one at the end;
    `checkpoint_count` the running interval whenever it changes (never published), so that
    `resume_count` can give a restarted agent the counts of the interval it was in.
    """

    def emit_count(self, report: CountReport) -> None: ...

    def checkpoint_count(self, report: CountReport) -> None: ...

    def resume_count(self, camera: str, rule: str, interval_start_ts: float) -> Mapping[str, Any] | None: ...
