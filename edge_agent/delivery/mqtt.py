"""The MQTT publisher: drains the outbox to the broker, at least once, in order.

One thread owns the paho client and does all of its I/O (paho's external-loop
API: our own `select` on the broker socket and a wake-up socket), so publishing,
PUBACK handling and outbox acks never race. A fresh paho client is made for
every connection: paho's in-memory resend queue is thrown away with it and the
outbox stays the only source of what still has to go out.

Delivery: items are published in outbox id order with at most `window` waiting
for their PUBACK; an item is removed from the outbox only on its PUBACK. After
a reconnect, sending starts again from the oldest item not acknowledged, so
items in flight when the connection broke are sent again (duplicates, which
the platform removes by `event_id`) and the order per camera holds.

Poison messages never block the queue, and acks a full disk refuses do not
turn into re-sends: `ledger.py` keeps what is known about items beyond the
outbox. (An MQTT 3.1.1 Mosquitto acknowledges a message its ACL or
`message_size_limit` refuses and drops it: the protocol gives the box no way to
know; use MQTT 5 to have such refusals counted.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.contract.mqtt_client import (
    ClientSetupError,
    make_client,
    new_client_id,
    parse_broker_url,
    ssl_reason,
)
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig, redact
from edge_agent.core.types import iso_utc
from edge_agent.delivery.ledger import Ledger
from edge_agent.delivery.outbox import Outbox, OutboxItem

logger = logging.getLogger(__name__)

STATS_SCHEMA = "eagleeye.stats/1"
CAMERA_STATES = ("online", "offline", "stalled")
DEFAULT_WINDOW = 32
_STABLE_S = 10.0  # a connection that held this long resets the backoff
_MAX_SELECT_S = 1.0  # keepalive pings and the stop flag are checked at least this often


class MqttPublisher:
    """Publishes the outbox, device status (with Last Will), camera status and stats."""

    def __init__(
        self,
        cfg: MqttConfig,
        outbox: Outbox,
        topics: Topics,
        *,
        stats_provider: Callable[[], Mapping[str, Any]] | None = None,
        backoff: Backoff | None = None,
        window: int = DEFAULT_WINDOW,
        outbox_extra: Callable[[], Mapping[str, Any]] | None = None,
        announce: Mapping[str, Any] | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"publisher window must be >= 1, got {window}")
        self._cfg = cfg
        self._outbox = outbox
        self._topics = topics
        self._stats_provider = stats_provider
        self._outbox_extra = outbox_extra  # the sink's memory queue, shown under `outbox`
        self._announce = dict(announce or {})  # site name, time zone, locations: in every `online`
        self._backoff = backoff or Backoff(1.0, 60.0)
        self._window = window
        self._host, self._port, self._tls, _, _ = parse_broker_url(cfg.url)
        if cfg.tls is not None and not self._tls:
            raise ValueError(
                f"mqtt.tls is set but mqtt.url {redact(cfg.url)!r} is plain mqtt://; use mqtts:// for TLS"
            )
        self._url_shown = redact(cfg.url)
        self._client_id = cfg.client_id or f"edge-agent-{topics.site}-{topics.device}"
        self._lock = threading.Lock()
        self._drained = threading.Condition()
        self._stop_evt = threading.Event()
        self._stop_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._started_mono = time.monotonic()
        # State owned by the network thread.
        self._client: paho.Client | None = None
        self._connected = False
        self._connect_count = 0
        self._inflight: dict[int, int] = {}  # mid -> outbox id
        self._acks: list[int] = []
        self._ledger = Ledger(outbox)
        self._cursor = 0
        self._outbox_dirty = True
        self._refusal: str | None = None
        self._disconnect_reason: str | None = None
        self._offline_mid: int | None = None
        self._offline_acked = False
        self._next_stats = 0.0
        self._connect_ok_at: float | None = None
        self._connected_since = iso_utc()
        self._just_connected = False
        self._camera_status: dict[str, tuple[str, str]] = {}
        self._camera_dirty: set[str] = set()
        # Counters (written by the network thread, read by anyone).
        self.published_total = 0
        self.acked_total = 0
        self.rejected_total = 0
        self.connect_failures = 0
        self.stats_errors = 0

    # --- public API ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the MQTT publisher is already started")
        if self._cfg.tls is not None and self._cfg.tls.insecure:
            logger.warning(
                "TLS certificate checks are off (mqtt.tls.insecure: true); never use this in the field"
            )
        self._outbox.add_listener(self._on_outbox_put)
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish `offline` (if connected), disconnect and end the thread; items not acked stay."""
        self._outbox.remove_listener(self._on_outbox_put)
        self._stop_deadline = time.monotonic() + max(0.0, timeout_s) * 0.8
        self._stop_evt.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("MQTT publisher did not stop within %.1f s", timeout_s)
                return
        self._wake_r.close()
        self._wake_w.close()

    def wait_drained(self, timeout_s: float) -> int:
        """Wait until the outbox is empty; returns how many items still wait (0: all acked)."""
        deadline = time.monotonic() + timeout_s
        with self._drained:
            while True:
                depth = self._outbox.depth()
                remaining = deadline - time.monotonic()
                if depth == 0 or remaining <= 0:
                    return depth
                self._drained.wait(min(remaining, 0.5))

    def set_camera_status(self, camera: str, state: str, since: str | None = None) -> None:
        """Publish a camera's state (retained); the latest per camera is re-sent on every connect."""
        if state not in CAMERA_STATES:
            raise ValueError(f"camera state must be one of {CAMERA_STATES}, got {state!r}")
        with self._lock:
            old = self._camera_status.get(camera)
            if old is not None and old[0] == state and since is None:
                return
            self._camera_status[camera] = (state, since or iso_utc())
            self._camera_dirty.add(camera)
        self._wake()

    def probe(self, timeout_s: float = 10.0) -> tuple[bool, str]:
        """Installer check: connect, publish one QoS 1 message on `{base}/doctor`, wait for its PUBACK.

        A throw-away client with no Last Will, so the device's status topic is
        never touched by a check run beside a live agent.
        """
        try:
            client = make_client(self._cfg, new_client_id("edge-agent-doctor"))
        except ClientSetupError as err:
            return False, str(err)
        answer: dict[str, Any] = {}
        answered = threading.Event()

        def on_connect(c: paho.Client, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
            answer["rc"] = rc
            answered.set()

        def on_disconnect(c: paho.Client, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
            answer.setdefault("closed", rc)
            answered.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        t0 = time.monotonic()
        try:
            client.connect(self._host, self._port, keepalive=max(10, int(timeout_s)))
        except ssl.SSLError as err:
            return False, f"TLS handshake with {self._url_shown} failed: {ssl_reason(err)}"
        except OSError as err:
            return False, f"cannot reach {self._url_shown}: {err.strerror or err}"
        client.loop_start()
        try:
            if not answered.wait(timeout_s):
                return False, f"{self._url_shown} did not answer within {timeout_s:g} s"
            rc = answer.get("rc")
            if rc is None:
                hint = " (a client certificate may be needed: mqtt.tls.cert/key)" if self._tls else ""
                return False, f"{self._url_shown} closed the connection ({answer.get('closed')}){hint}"
            if rc.is_failure:
                hint = " (check mqtt.username and the password)" if rc.value in (4, 5, 0x86, 0x87) else ""
                return False, f"{self._url_shown} refused the connection: {rc}{hint}"
            connect_ms = (time.monotonic() - t0) * 1000
            payload = json.dumps({"check": "doctor", "ts": iso_utc()})
            info = client.publish(f"{self._topics.base}/doctor", payload, qos=1)
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                return False, f"connected, but the test message got no PUBACK within {timeout_s:g} s"
            total_ms = (time.monotonic() - t0) * 1000
            tls = "TLS, " if self._tls else ""
            return (
                True,
                f"{tls}connected in {connect_ms:.0f} ms, test message acknowledged ({total_ms:.0f} ms)",
            )
        finally:
            client.disconnect()
            client.loop_stop()

    def counters(self) -> dict[str, Any]:
        """The publisher's counters (the `mqtt` member of the stats payload)."""
        return {
            "connected": self._connected,
            "published": self.published_total,
            "acked": self.acked_total,
            "rejected": self.rejected_total,
            "dead_lettered": self._ledger.dead_lettered,
            "ack_errors": self._ledger.write_errors,
            "acks_unwritten": self._ledger.unwritten,
            "reconnects": max(0, self._connect_count - 1),
            "connect_failures": self.connect_failures,
            "inflight": len(self._inflight),
        }

    def stats_payload(self) -> dict[str, Any]:
        """The stats message: the pipeline's stats_provider() with the publisher's own counters."""
        extra: dict[str, Any] = {}
        if self._stats_provider is not None:
            try:
                extra = dict(self._stats_provider())
            except Exception:
                self.stats_errors += 1
                logger.exception("stats provider failed; publishing the publisher's own stats only")
        return {
            **extra,
            "schema": STATS_SCHEMA,
            "ts": iso_utc(),
            "uptime_s": round(time.monotonic() - self._started_mono, 3),
            "outbox": {**self._outbox.counters(), **(self._outbox_extra() if self._outbox_extra else {})},
            "mqtt": self.counters(),
        }

    # --- wake-ups from other threads -------------------------------------------------

    def _on_outbox_put(self) -> None:
        self._outbox_dirty = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed at stop
            self._wake_w.send(b"\0")

    # --- the network thread ----------------------------------------------------------

    def _run(self) -> None:
        while not self._stop_evt.is_set():
            try:
                failure = self._session()
            except ClientSetupError as err:
                failure = str(err)
            except Exception as err:
                logger.exception("MQTT publisher: unexpected error, reconnecting")
                failure = f"unexpected error: {err}"
            finally:
                self._end_session()
            if self._stop_evt.is_set():
                break
            if self._connect_ok_at is not None and time.monotonic() - self._connect_ok_at >= _STABLE_S:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            logger.warning("%s; retrying in %.1f s", failure, delay)
            self._stop_evt.wait(delay)
        logger.info("MQTT publisher stopped")

    def _session(self) -> str:
        """One connection, from connect to loss; returns why it ended."""
        self._connect_ok_at = None
        self._refusal = None
        self._disconnect_reason = None
        client = self._new_client()
        self._client = client
        try:
            client.connect(self._host, self._port, keepalive=self._cfg.keepalive_s, **self._connect_kwargs())
        except ssl.SSLError as err:
            self.connect_failures += 1
            return f"TLS handshake with the MQTT broker {self._url_shown} failed: {ssl_reason(err)}"
        except OSError as err:
            self.connect_failures += 1
            return f"cannot reach the MQTT broker {self._url_shown}: {err.strerror or err}"
        while True:
            if self._stop_evt.is_set() and self._clean_stop(client):
                return "stopped"
            sock = client.socket()
            if sock is None:
                break
            self._wait_io(client, sock)
            if client.socket() is not None:
                client.loop_misc()
            self._flush_acks()
            if self._connected and client.socket() is not None:
                self._after_connect(client)
                self._send_camera_status(client)
                self._pump(client)
                self._send_stats(client)
        if self._refusal is not None:
            self.connect_failures += 1
            return self._refusal
        if self._connect_ok_at is None:
            self.connect_failures += 1
            hint = "; the broker may want a client certificate (mqtt.tls.cert/key)" if self._tls else ""
            reason = self._disconnect_reason or "closed"
            where = f"the MQTT broker {self._url_shown}"
            return f"{where} closed the connection before accepting it ({reason}){hint}"
        reason = self._disconnect_reason or "closed"
        return f"lost the connection to the MQTT broker {self._url_shown} ({reason})"

    def _wait_io(self, client: paho.Client, sock: Any) -> None:
        pending = sock.pending() if hasattr(sock, "pending") else 0
        timeout = 0.0 if pending else _MAX_SELECT_S
        if self._connected:
            timeout = min(timeout, max(0.0, self._next_stats - time.monotonic()))
        wlist = [sock] if client.want_write() else []
        readable, writable, _ = select.select([sock, self._wake_r], wlist, [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while self._wake_r.recv(4096):
                    pass
        if sock in readable or pending:
            client.loop_read()
        if client.socket() is not None and (sock in writable or client.want_write()):
            client.loop_write()

    def _end_session(self) -> None:
        client, self._client = self._client, None
        self._connected = False
        if self._connect_ok_at is not None:
            self._ledger.connection_lost(list(self._inflight.values()), self._disconnect_reason)
        self._inflight.clear()
        # PUBACKs already received stay known: written now or later, never sent again.
        self._ledger.acked(self._acks)
        self._acks.clear()
        self._ledger.write(force=True)
        if client is not None and client.socket() is not None:
            with contextlib.suppress(Exception):
                client.disconnect()
            with contextlib.suppress(Exception):
                client.loop_write()

    def _new_client(self) -> paho.Client:
        self._connected_since = iso_utc()
        will = {"state": "offline", "since": self._connected_since, "reason": "connection_lost"}
        try:
            client = make_client(self._cfg, self._client_id, will=(self._topics.status, will))
        except ClientSetupError:
            self.connect_failures += 1
            raise
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(self._window + 8)  # outbox window + status and stats
        client.max_queued_messages_set(0)
        return client

    def _connect_kwargs(self) -> dict[str, Any]:
        return {"clean_start": True} if self._cfg.protocol == "5" else {}

    # --- paho callbacks (run on the network thread, inside loop_read/loop_write) ----

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        if reason_code.is_failure:
            hint = ""
            if reason_code.value in (4, 5, 0x86, 0x87, 0x8C):
                hint = " (check mqtt.username and the password or password_file)"
            self._refusal = f"the MQTT broker {self._url_shown} refused the connection: {reason_code}{hint}"
            return
        self._connected = True
        self._connect_ok_at = time.monotonic()
        self._connect_count += 1
        self._cursor = 0
        self._outbox_dirty = True
        self._just_connected = True
        logger.info(
            "connected to the MQTT broker %s as %s (%d items waiting in the outbox)",
            self._url_shown,
            self._client_id,
            self._outbox.depth(),
        )

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        self._connected = False
        self._disconnect_reason = str(reason_code)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
    ) -> None:
        if mid == self._offline_mid:
            self._offline_acked = True
            return
        item_id = self._inflight.pop(mid, None)
        if item_id is None:
            return
        if reason_code.is_failure:
            # MQTT 5 brokers say why they refuse a message (e.g. not authorised by the ACL).
            # Sending it again would be refused again and block the queue behind it.
            self.rejected_total += 1
            self._ledger.refused(item_id, f"refused by the MQTT broker: {reason_code}")
            return
        self.acked_total += 1
        self._acks.append(item_id)

    # --- work done on the network thread while connected -----------------------------

    def _after_connect(self, client: paho.Client) -> None:
        if not self._just_connected:
            return
        self._just_connected = False
        online = {"state": "online", "since": self._connected_since, "reason": "connected", **self._announce}
        client.publish(self._topics.status, json.dumps(online), qos=1, retain=True)
        client.publish(self._topics.available, "online", qos=1, retain=True)
        with self._lock:
            self._camera_dirty = set(self._camera_status)
        self._next_stats = time.monotonic()

    def _flush_acks(self) -> None:
        if self._acks:
            self._ledger.acked(self._acks)
            self._acks = []
        if self._ledger.write():
            with self._drained:
                self._drained.notify_all()

    def _pump(self, client: paho.Client) -> None:
        while True:
            window = self._ledger.window(self._window, self._cursor)
            room = window - len(self._inflight)
            if room <= 0 or not self._outbox_dirty:
                return
            self._outbox_dirty = False
            items = self._outbox.peek(room, after_id=self._cursor)
            if len(items) == room:
                self._outbox_dirty = True  # there may be more behind them
            sent = 0
            for item in items:
                if self._ledger.settled(item.id):  # delivered or refused, only not yet written
                    self._cursor = item.id
                    continue
                if not self._send_item(client, item):
                    return
                sent += 1
            if sent or not self._outbox_dirty:
                return

    def _send_item(self, client: paho.Client, item: OutboxItem) -> bool:
        try:
            info = client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
        except ValueError as err:
            # paho checks the topic and the size before anything is sent; it will say the
            # same every time, so the item goes aside now and the next one is sent.
            self.rejected_total += 1
            self._cursor = item.id
            self._ledger.refused(item.id, f"refused by the MQTT client: {err}")
            self._ledger.write(force=True)
            return True
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self._cursor = item.id
        self.published_total += 1
        if item.qos == 0:
            self.acked_total += 1
            self._acks.append(item.id)  # no PUBACK at QoS 0: handed to the socket is all there is
        else:
            self._inflight[info.mid] = item.id
            self._ledger.sent(item.id)
        return True

    def _send_camera_status(self, client: paho.Client) -> None:
        with self._lock:
            if not self._camera_dirty:
                return
            todo = [(cam, self._camera_status[cam]) for cam in sorted(self._camera_dirty)]
            self._camera_dirty.clear()
        for camera, (state, since) in todo:
            payload = json.dumps({"state": state, "since": since})
            client.publish(self._topics.camera_status(camera), payload, qos=1, retain=True)

    def _send_stats(self, client: paho.Client) -> None:
        now = time.monotonic()
        if now < self._next_stats:
            return
        self._next_stats = now + self._cfg.stats_interval_s
        payload = json.dumps(self.stats_payload(), ensure_ascii=False, separators=(",", ":"))
        client.publish(self._topics.stats, payload, qos=0, retain=False)

    def _clean_stop(self, client: paho.Client) -> bool:
        """Say `offline` and wait for its PUBACK (bounded); True when the session may end."""
        if not self._connected:
            return True
        if self._offline_mid is None:
            offline = {"state": "offline", "since": iso_utc(), "reason": "stopped"}
            client.publish(self._topics.available, "offline", qos=1, retain=True)
            info = client.publish(self._topics.status, json.dumps(offline), qos=1, retain=True)
            self._offline_mid = info.mid
        if self._offline_acked or time.monotonic() >= self._stop_deadline:
            if not self._offline_acked:
                logger.warning("no PUBACK for the offline status before the stop deadline")
            client.disconnect()
            return True
        return False
