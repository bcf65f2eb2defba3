"""The live event sink: events and their snapshots go into the durable outbox."""

from __future__ import annotations

import logging

from edge_agent.outbox import Outbox, OutboxMessage
from edge_agent.publish.topics import Topics
from edge_agent.types import Event

logger = logging.getLogger(__name__)


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
        self.snapshot_topic_mismatches = 0

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None:
        messages = []
        if snapshot_jpeg is not None:
            topic = self._topics.snapshot(event.event_id)
            if event.snapshot is not None and event.snapshot.topic != topic:
                self.snapshot_topic_mismatches += 1
                logger.warning(
                    "event %s names snapshot topic %s but snapshots are published on %s",
                    event.event_id,
                    event.snapshot.topic,
                    topic,
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
