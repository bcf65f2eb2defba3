"""The live event sink: events and their snapshots go into the durable outbox."""

from __future__ import annotations

from edge_agent.core.types import Event
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

    def __init__(self, outbox: Outbox, topics: Topics) -> None:
        self._outbox = outbox
        self._topics = topics
        self.emitted_total = 0

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

    def close(self) -> None:
        """Nothing to release: the outbox belongs to whoever opened it."""
