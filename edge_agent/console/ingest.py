"""The subscriber: every box's messages into the database, acknowledged only once committed.

paho runs with `manual_ack=True`. Its network thread only hands each message to
a bounded queue; one writer thread takes what has arrived (up to `BATCH_MAX`),
writes it in one transaction, commits, and only then sends the PUBACKs, in the
order the messages came. Killed between the commit and the PUBACK, the console
gets the message again from the broker after its restart (persistent session:
fixed client id, clean_start false) and the unique keys drop the copy; killed
before the commit, nothing was acknowledged, so nothing is lost.

A PUBACK belongs to its connection: the message id of a message received on a
connection that has since broken may name another message on the next one.
Each queued message carries the connection generation it came on, and one from
an older generation is stored but never acknowledged (the broker re-sends it).

A message over its kind's size cap (`limits`) is acknowledged like any other
but not stored: the `refused` table counts it per box and kind, so one box
sending 5 MB events neither fills the disk nor blocks the queue.

When the queue is full the network thread waits: paho stops reading the
socket and the broker holds the rest (its in-flight window is `receive_maximum`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import sqlalchemy as sa
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_agent.console import tables
from edge_agent.console.config import MqttConfig
from edge_agent.console.db import Database, transient_errors
from edge_agent.console.receipts import ReceiptSender
from edge_agent.console.records import Limits, parse_message
from edge_agent.console.store import BatchResult, write_batch
from edge_agent.contract.mqtt_client import ClientSetupError, make_client, parse_broker_url
from edge_agent.contract.topics import API_VERSION
from edge_agent.core.config import ConfigError, Problem, redact

logger = logging.getLogger(__name__)

QUEUE_MAX = 5000
BATCH_MAX = 500
_RETRY_MAX_S = 30.0
_RETRYABLE: tuple[type[BaseException], ...] = (*transient_errors(), OSError)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    retain: bool


def subscriptions(cfg: MqttConfig) -> list[tuple[str, int]]:
    """The filters: the whole tree, shared by the group if there is one.

    Brokers send no retained messages to a shared subscription, so with a group
    every instance also subscribes to the status topics on its own: their rows
    are keyed by (device, state, since) and a second copy is a no-op.
    """
    tree = f"{cfg.topic_prefix}/{API_VERSION}/+/+/#"
    if cfg.group is None:
        return [(tree, 1)]
    base = f"{cfg.topic_prefix}/{API_VERSION}/+/+"
    return [(f"$share/{cfg.group}/{tree}", 1), (f"{base}/status", 1), (f"{base}/cameras/+/status", 1)]


class Ingest:
    """The MQTT client and the writer thread; `start()`, `stop()`, counters for /api/status."""

    def __init__(
        self,
        cfg: MqttConfig,
        db: Database,
        on_commit: Callable[[BatchResult], None] | None = None,
        limits: object | None = None,
    ) -> None:
        self.cfg = cfg
        self.db = db
        self.on_commit = on_commit
        self.limits = Limits.of(limits)  # the config's `limits`; the defaults when None
        self.host, self.port, _, _, _ = parse_broker_url(cfg.url)
        self.shown = redact(cfg.url)
        self._queue: queue.Queue[Received] = queue.Queue(QUEUE_MAX)
        self._stop = threading.Event()
        self.failed = threading.Event()  # the writer gave up: the process should exit and be restarted
        self._ack_lock = threading.Lock()  # generation changes and PUBACKs never interleave
        self._generation = 0
        self._writer: threading.Thread | None = None
        self._client: paho.Client | None = None
        self.connected = False
        self.subscribed = False
        self.last_error: str | None = None
        # counters
        self.received_total = 0
        self.committed_total = 0
        self.events_total = 0
        self.duplicates_total = 0
        self.rejected_total = 0
        self.refused_total = 0
        self.acked_total = 0
        self.unacked_stale = 0
        self.db_retries = 0
        # end-to-end receipts: boxes keep an event until the console says it is stored
        self.receipts = ReceiptSender(cfg.topic_prefix, name="town console")
        self.connects = 0
        self.sessions_lost = 0  # connects where the broker had no session although it should have
        self._had_data = False

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        # A broker that answers "no session" to a console that has stored messages before has
        # lost what it held for us (a crash, its persistence file gone): say so loudly.
        with self.db.connection() as conn:
            self._had_data = conn.execute(sa.select(tables.events.c.id).limit(1)).first() is not None
        self._writer = threading.Thread(target=self._write_loop, name="console-writer", daemon=True)
        self._writer.start()
        client = self._new_client()
        self._client = client
        client.connect_async(self.host, self.port, keepalive=self.cfg.keepalive_s, **self._connect_kwargs())
        client.loop_start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect, then let the writer commit what is queued (it is acked only if still connected)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                self.receipts.offline(client)  # a crash leaves it to the Last Will
                client.disconnect()
            client.loop_stop()
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout_s)

    def retire(self, idle_s: float = 3.0, timeout_s: float = 600.0) -> bool:
        """Leave for good: stop taking new messages, store what is queued, delete the session.

        A persistent session outlives its console: in a shared group the broker
        keeps giving it its share until the session expires. So: unsubscribe
        (nothing new is routed here), store and acknowledge what still arrives
        until nothing has come for `idle_s`, then connect once more with a clean
        session, which makes the broker drop it. True when drained in time.
        """
        client = self._client
        if client is None:
            return False
        deadline = time.monotonic() + timeout_s
        while not self.subscribed and time.monotonic() < deadline:
            time.sleep(0.05)
        client.unsubscribe([t for t, _ in subscriptions(self.cfg)])
        last = (-1, 0.0)
        while time.monotonic() < deadline:
            seen = (self.received_total, time.monotonic())
            if seen[0] != last[0]:
                last = seen
            elif (
                time.monotonic() - last[1] >= idle_s
                and self._queue.empty()
                and self.committed_total >= self.received_total
            ):
                break
            time.sleep(0.1)
        drained = time.monotonic() < deadline
        self.stop()
        forget = self._new_client(clean=True)
        done = threading.Event()

        def on_connect(c: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            c.disconnect()
            done.set()

        forget.on_connect = on_connect
        kwargs: dict[str, Any] = {"clean_start": True} if self.cfg.protocol == "5" else {}
        forget.connect(self.host, self.port, keepalive=self.cfg.keepalive_s, **kwargs)
        forget.loop_start()
        done.wait(10)
        forget.loop_stop()
        logger.info("session %s deleted at %s", self.cfg.client_id, self.shown)
        return drained and done.is_set()

    def status(self) -> dict[str, Any]:
        return {
            "broker": self.shown,
            "connected": self.connected,
            "subscribed": self.subscribed,
            "subscriptions": [t for t, _ in subscriptions(self.cfg)],
            "client_id": self.cfg.client_id,
            "queued": self._queue.qsize(),
            "received": self.received_total,
            "committed": self.committed_total,
            "events": self.events_total,
            "duplicates": self.duplicates_total,
            "rejected": self.rejected_total,
            "refused": self.refused_total,
            "acked": self.acked_total,
            "db_retries": self.db_retries,
            "receipts_sent": self.receipts.sent_total,
            "sessions_lost": self.sessions_lost,
            "last_error": self.last_error,
        }

    # --- the paho side ----------------------------------------------------------------

    def _new_client(self, clean: bool = False) -> paho.Client:
        """The console's client; `clean` only to make the broker drop the session (retire)."""
        cfg = self.cfg
        try:
            client = make_client(
                cfg, cfg.client_id, persistent=not clean, manual_ack=True, will=self.receipts.will()
            )
        except ClientSetupError as err:
            raise ConfigError([Problem("mqtt", str(err))]) from err
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        return client

    def _connect_kwargs(self) -> dict[str, Any]:
        if self.cfg.protocol != "5":
            return {}
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        props.ReceiveMaximum = self.cfg.receive_maximum
        return {"clean_start": False, "properties": props}

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._ack_lock:
            self._generation += 1
        if rc.is_failure:
            self.last_error = f"the broker {self.shown} refused the connection: {rc}"
            logger.error("%s", self.last_error)
            return
        self.connected = True
        self.last_error = None
        resumed = bool(getattr(flags, "session_present", False))
        expected = self.connects > 0 or self._had_data
        self.connects += 1
        if not resumed and expected:
            self.sessions_lost += 1
            logger.warning(
                "the broker %s has no session for %s: what it held for the console while it was away "
                "is gone (broker restarted without its persistence?); boxes that wait for receipts "
                "send it again, others lose it",
                self.shown,
                self.cfg.client_id,
            )
        else:
            logger.info(
                "connected to %s as %s (%s session)",
                self.shown,
                self.cfg.client_id,
                "resumed" if resumed else "new",
            )
        client.subscribe(self._subscribe_args())
        self.receipts.announce(client)

    def _subscribe_args(self) -> list[tuple[str, Any]]:
        """The filters at QoS 1; with MQTT 5, "no local" where allowed, so the console's own
        receipts and platform status do not come back to it (MQTT 5 forbids it on a shared
        subscription: there, they arrive and are ignored as any message that is not a box's)."""
        if self.cfg.protocol != "5":
            return list(subscriptions(self.cfg))
        return [
            (topic, SubscribeOptions(qos=qos, noLocal=not topic.startswith("$share/")))
            for topic, qos in subscriptions(self.cfg)
        ]

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        failed = [str(rc) for rc in rcs if rc.is_failure]
        if failed:
            self.last_error = f"the broker {self.shown} refused the subscription: {', '.join(failed)}"
            logger.error("%s", self.last_error)
            return
        self.subscribed = True
        logger.info("subscribed to %s", ", ".join(t for t, _ in subscriptions(self.cfg)))

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._ack_lock:
            self._generation += 1
        was = self.connected
        self.connected = self.subscribed = False
        if was and not self._stop.is_set():
            logger.warning("lost the connection to %s (%s); reconnecting", self.shown, rc)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        item = Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._generation, bool(msg.retain))
        self.received_total += 1
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stop.is_set():
                    return  # not acknowledged: the broker sends it again next time

    # --- the writer -------------------------------------------------------------------

    def _take_batch(self) -> list[Received]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        delay = 0.5
        pending: list[Received] = []
        while True:
            if not pending:
                if self._stop.is_set() and self._queue.empty():
                    break
                pending = self._take_batch()
                if not pending:
                    continue
            try:
                records = [
                    parse_message(self.cfg.topic_prefix, m.topic, m.payload, self.limits) for m in pending
                ]
                # The block commits when it ends: only then are the messages acknowledged (below).
                with self.db.transaction() as conn:
                    result = write_batch(conn, records, time.time(), [m.retain for m in pending])
            except _RETRYABLE as err:
                self.db_retries += 1
                self.last_error = f"database {self.db.describe(err)}"
                logger.warning("%s; retrying the batch of %d in %.1f s", self.last_error, len(pending), delay)
                if self._stop.wait(delay):
                    break  # nothing acknowledged: the broker keeps these messages for us
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            except Exception as err:
                # A bug or a database that refuses the data: stop taking messages rather than
                # acknowledge what was never stored.
                self.last_error = f"cannot store messages: {err}"
                logger.exception("cannot store a batch of %d messages; ingest stopped", len(pending))
                self.failed.set()
                break
            delay = 0.5
            self._ack(pending)
            client = self._client
            if client is not None:  # else the boxes send again after their receipt timeout
                self.receipts.committed(client, [(m.topic, m.payload) for m in pending])
                if result.clips_stored:
                    self.receipts.clips_stored(client, result.clips_stored)
            self.committed_total += len(pending)
            self.events_total += result.events
            self.duplicates_total += result.duplicates
            self.rejected_total += result.rejected
            self.refused_total += result.refused
            if result.refused:
                logger.warning(
                    "%d message(s) over their size cap; counted in the refused table", result.refused
                )
            if result.rejected:
                logger.warning(
                    "%d message(s) broke the contract; kept in the rejected table", result.rejected
                )
            pending = []
            if self.on_commit is not None:
                try:
                    self.on_commit(result)
                except Exception:
                    logger.exception("commit listener failed")

    def _ack(self, batch: list[Received]) -> None:
        client = self._client
        with self._ack_lock:
            for m in batch:
                if m.qos == 0:
                    continue
                if client is None or m.generation != self._generation or not self.connected:
                    self.unacked_stale += 1
                    continue
                client.ack(m.mid, m.qos)
                self.acked_total += 1
