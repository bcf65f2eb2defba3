"""The live event sink: events and their snapshots go into the durable outbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_agent.core.counts import CountReport
from edge_agent.core.types import Event
from edge_agent.delivery.count_store import CountStore
from edge_agent.delivery.outbox import Outbox, OutboxMessage
from edge_agent.delivery.topics import Topics


class OutboxSink:
    """`EventSink` that stores each event (and its snapshot first) in the outbox.

    The snapshot and its event go in one transaction, the snapshot first: the
    platform receives the picture before the event that points to it, and a
    crash never leaves one without the other. Both carry the event's camera
    (for the order per camera) and severity (for the cap policy). The sink does
    not own the outbox: `close()` leaves it open for the publisher.
    """

    def __init__(self, outbox: Outbox, topics: Topics, counts: CountStore | None = None) -> None:
        self._outbox = outbox
        self._topics = topics
        self._counts = counts
        self.emitted_total = 0
        self.counts_total = 0

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None:
        messages = []
        if snapshot_jpeg is not None:
            # The picture goes where its event says it is: the topic was built once, by
            # `Topics.snapshot`, when the event was made.
            topic = (
                event.snapshot.topic if event.snapshot is not None else self._topics.snapshot(event.event_id)
            )
            messages.append(
                OutboxMessage(topic, snapshot_jpeg, camera=event.camera, severity=event.severity, qos=1)
            )
        messages.append(
            OutboxMessage(
                self._topics.event(event.camera, event.rule),
                event.to_json().encode("utf-8"),
                camera=event.camera,
                severity=event.severity,
                qos=1,
            )
        )
        self._outbox.put_many(messages)
        self.emitted_total += 1

    def emit_count(self, report: CountReport) -> None:
        """A count aggregate, retained (QoS 1): a complete interval once only, a cut-short one as is."""
        if report.complete and self._counts is not None:
            if not self._counts.claim(report.camera, report.rule, report.interval_start_ts):
                return  # published before a restart: never twice
        payload = report.to_json(self._topics.site, self._topics.device).encode("utf-8")
        topic = self._topics.counts(report.camera, report.rule)
        self._outbox.put_many([OutboxMessage(topic, payload, report.camera, "info", qos=1, retain=True)])
        self.counts_total += 1

    def checkpoint_count(self, report: CountReport) -> None:
        if self._counts is not None:
            state = report.to_dict(self._topics.site, self._topics.device)
            self._counts.checkpoint(report.camera, report.rule, report.interval_start_ts, state)

    def resume_count(self, camera: str, rule: str, interval_start_ts: float) -> Mapping[str, Any] | None:
        return self._counts.resume(camera, rule, interval_start_ts) if self._counts is not None else None

    def close(self) -> None:
        """Nothing to release: the outbox belongs to whoever opened it."""
