"""The live event sink: events and their snapshots go into the durable outbox."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from edge_agent.contract.clips import split_clip
from edge_agent.contract.topics import Topics
from edge_agent.core.counts import CountReport
from edge_agent.core.types import Event
from edge_agent.delivery.count_store import CountStore
from edge_agent.delivery.outbox import LANE_CLIPS, Outbox, OutboxError, OutboxMessage

logger = logging.getLogger(__name__)

HOLD_MAX_ITEMS = 2000  # messages kept in memory while the disk refuses writes
HOLD_MAX_BYTES = 32 * 1024 * 1024
_RETRY_S = 1.0  # a refused disk is tried again at most this often (puts in between are held)


class OutboxSink:
    """`EventSink` that stores each event (and its snapshot first) in the outbox.

    The snapshot, a left object's owner crop, the event and its clip's chunks go
    in one transaction, the pictures first: the platform receives them before the
    event that points to them, and a crash never leaves one without the other.
    The chunks (`clips/{event_id}/{index}`, at most 256 KiB each) go into the
    outbox's clip lane: sent after everything else waiting, an alert stored later
    included, and dropped first when the outbox is full. All carry the event's
    camera (for the order per camera) and severity (for the cap policy). The sink does
    not own the outbox: `close()` leaves it open for the publisher.

    When the disk refuses a put (full, read-only, I/O error) the sink never
    raises into the camera's pipeline: the messages wait in a bounded memory
    queue, in order, and go into the outbox ahead of the next ones as soon as
    the disk takes writes again (tried at the next emit and at each `retry()`,
    at most once a second). A daemon that died of a full disk would lose every
    event after it; one that waits loses only what does not fit in memory: past
    `HOLD_MAX_ITEMS` or `HOLD_MAX_BYTES` the oldest held events are dropped and
    counted (`outbox.lost_unstored`). Held items do not survive a restart.
    """

    def __init__(self, outbox: Outbox, topics: Topics, counts: CountStore | None = None) -> None:
        self._outbox = outbox
        self._topics = topics
        self._counts = counts
        self.emitted_total = 0
        self.clips_total = 0  # clips put into the outbox (in chunks)
        self._lock = threading.Lock()
        self._held: collections.deque[list[OutboxMessage]] = collections.deque()
        self._held_items = 0
        self._held_bytes = 0
        self._retry_at = 0.0
        self.write_errors = 0
        self.lost_unstored = 0
        self.last_write_error: str | None = None
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
        media = event.evidence
        if media is not None and media.owner_jpeg is not None and event.owner is not None:
            topic = self._topics.owner_crop(event.event_id)
            messages.append(OutboxMessage(topic, media.owner_jpeg, event.camera, event.severity, qos=1))
        messages.append(
            OutboxMessage(
                self._topics.event(event.camera, event.rule),
                event.to_json().encode("utf-8"),
                camera=event.camera,
                severity=event.severity,
                qos=1,
            )
        )
        if media is not None and media.clip is not None and event.clip is not None:
            for index, chunk in enumerate(split_clip(media.clip)):
                topic = self._topics.clip(event.event_id, index)
                messages.append(
                    OutboxMessage(topic, chunk, event.camera, event.severity, qos=1, lane=LANE_CLIPS)
                )
            self.clips_total += 1
        self.store(messages)
        self.emitted_total += 1

    def store(self, messages: list[OutboxMessage]) -> None:
        """Into the outbox, in order behind whatever waits in memory; held when the disk refuses."""
        with self._lock:
            self._held.append(messages)
            self._held_items += len(messages)
            self._held_bytes += sum(len(m.payload) for m in messages)
            self._flush(time.monotonic(), force=len(self._held) == 1)
            self._bound()

    def retry(self) -> int:
        """Try to store what waits in memory; returns how many messages still wait."""
        with self._lock:
            if self._held:
                self._flush(time.monotonic(), force=False)
            return self._held_items

    def _flush(self, now: float, *, force: bool) -> None:
        if not force and now < self._retry_at:
            return
        while self._held:
            group = self._held[0]
            try:
                self._outbox.put_many(group)
            except ValueError:
                self._drop_first()  # a message the outbox can never take: the caller's bug
                raise
            except OutboxError as err:
                self.write_errors += 1
                self._retry_at = now + _RETRY_S
                if self.last_write_error is None:
                    # One line when the trouble starts and one when it ends: a full disk
                    # is a device problem, not a camera's.
                    logger.error(
                        "%s; new events wait in memory (up to %d messages) until the disk takes them",
                        err,
                        HOLD_MAX_ITEMS,
                    )
                self.last_write_error = str(err)
                return
            self._drop_first()
        if self.last_write_error is not None:
            logger.warning("the outbox takes writes again: every event held in memory is stored")
            self.last_write_error = None

    def _bound(self) -> None:
        while len(self._held) > 1 and (
            self._held_items > HOLD_MAX_ITEMS or self._held_bytes > HOLD_MAX_BYTES
        ):
            self._drop_first()
            self.lost_unstored += 1
            if self.lost_unstored == 1 or self.lost_unstored % 100 == 0:
                logger.error(
                    "the disk still refuses the outbox and the memory queue is full: "
                    "%d event(s) lost so far, the oldest first",
                    self.lost_unstored,
                )

    def _drop_first(self) -> None:
        group = self._held.popleft()
        self._held_items -= len(group)
        self._held_bytes -= sum(len(m.payload) for m in group)

    def counters(self) -> dict[str, Any]:
        """The sink's part of the stats' `outbox` member."""
        with self._lock:
            return {
                "write_errors": self.write_errors,
                "held_in_memory": self._held_items,
                "lost_unstored": self.lost_unstored,
                "last_write_error": self.last_write_error,
            }

    def emit_count(self, report: CountReport) -> None:
        """A count aggregate, retained (QoS 1): a complete interval once only, a cut-short one as is."""
        if report.complete and self._counts is not None:
            if not self._counts.claim(report.camera, report.rule, report.interval_start_ts):
                return  # published before a restart: never twice
        payload = report.to_json(self._topics.site, self._topics.device).encode("utf-8")
        topic = self._topics.counts(report.camera, report.rule)
        self.store([OutboxMessage(topic, payload, report.camera, "info", qos=1, retain=True)])
        self.counts_total += 1

    def checkpoint_count(self, report: CountReport) -> None:
        if self._counts is not None:
            state = report.to_dict(self._topics.site, self._topics.device)
            self._counts.checkpoint(report.camera, report.rule, report.interval_start_ts, state)

    def resume_count(self, camera: str, rule: str, interval_start_ts: float) -> Mapping[str, Any] | None:
        return self._counts.resume(camera, rule, interval_start_ts) if self._counts is not None else None

    def close(self) -> None:
        """Try once more to store what waits in memory; the outbox belongs to whoever opened it."""
        with self._lock:
            if self._held:
                self._flush(time.monotonic(), force=True)
                if self._held:
                    logger.error(
                        "%d message(s) held in memory are lost: the disk refused them", self._held_items
                    )
