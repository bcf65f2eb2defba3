"""The MQTT publisher: drains the outbox to the broker, at least once, in order, end to end.

One thread owns the paho client and does all of its I/O (paho's external-loop
API: our own `select` on the broker socket and a wake-up socket), so publishing,
PUBACK handling and outbox acks never race. A fresh paho client is made for
every connection: paho's in-memory resend queue is thrown away with it and the
outbox stays the only source of what still has to go out.

Delivery: items are published in outbox id order with at most `window` waiting for
their PUBACK, the main lane first: a clip chunk (`LANE_CLIPS`) is sent only when no
event, snapshot or count waits to be sent, so clips never hold up an alert stored
after them (each lane has its own cursor). An item is removed from the outbox on its
PUBACK, or, while the box waits for receipts (`mqtt.receipts`, `platform.py`), an
event phase and its snapshot only on the platform's receipt (`awaiting.py`): a
broker that dies before it saved its queue loses nothing. After a reconnect, and
when the oldest item has waited `mqtt.receipt_timeout_s` for its receipt, sending
starts again from the oldest item not settled, so the order per camera holds; the
platform removes the duplicates by `event_id`, phase and `ts`.

Only draining happens here: device status goes with the connection (online on
connect, the Last Will, offline on stop); camera states and the agent's stats
are read from the status board (`status_board.py`) that the agent writes.

The reconnect backoff starts over once a connection has carried a publish and
its PUBACK: a broker that flaps (down a few seconds in every ten) never pushes
the delay up, so the box is back within a second or two of each return.

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

from edge_agent.contract.mqtt_client import ClientSetupError, make_client, parse_broker_url, ssl_reason
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig, redact
from edge_agent.core.types import iso_utc
from edge_agent.delivery.ledger import Ledger
from edge_agent.delivery.outbox import LANE_CLIPS, LANE_MAIN, Outbox, OutboxItem
from edge_agent.delivery.platform import ReceiptDesk
from edge_agent.delivery.status_board import StatusBoard

logger = logging.getLogger(__name__)

STATS_SCHEMA = "eagleeye.stats/1"
DEFAULT_WINDOW = 32
_MAX_SELECT_S = 1.0  # keepalive pings and the stop flag are checked at least this often


class MqttPublisher:
    """Drains the outbox to the broker; sends what the status board holds; takes the receipts."""

    def __init__(
        self,
        cfg: MqttConfig,
        outbox: Outbox,
        topics: Topics,
        *,
        board: StatusBoard | None = None,
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
        self.board = board or StatusBoard()
        self._receipts = ReceiptDesk(cfg, topics, outbox)
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
        self._cursors = {LANE_MAIN: 0, LANE_CLIPS: 0}  # per lane: the last id sent (or passed over)
        self._outbox_dirty = True
        self._refusal: str | None = None
        self._disconnect_reason: str | None = None
        self._offline_mid: int | None = None
        self._offline_acked = False
        self._next_stats = 0.0
        self._connect_ok_at: float | None = None
        self._proven = False  # this connection carried a publish and its PUBACK
        self._connected_since = iso_utc()
        self._just_connected = False
        # Counters (written by the network thread, read by anyone).
        self.published_total = 0
        self.acked_total = 0
        self.rejected_total = 0
        self.connect_failures = 0

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
        self.board.add_listener(self._wake)
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish `offline` (if connected), disconnect and end the thread; items not acked stay."""
        self._outbox.remove_listener(self._on_outbox_put)
        self.board.remove_listener(self._wake)
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
            "receipts": self._receipts.counters(),
        }

    def stats_payload(self) -> dict[str, Any]:
        """The stats message: what the agent wrote on the status board, with the delivery's counters."""
        return {
            **self.board.stats(),
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
            if self._proven:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            logger.warning("%s; retrying in %.1f s", failure, delay)
            self._stop_evt.wait(delay)
        logger.info("MQTT publisher stopped")

    def _session(self) -> str:
        """One connection, from connect to loss; returns why it ended."""
        self._connect_ok_at = None
        self._proven = False
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
                if self._receipts.resend_due():
                    self._rewind()
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
        client.on_message = self._on_message
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
        self._rewind()
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
        if not reason_code.is_failure:
            self._proven = True
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
        if not self._receipts.pubacked(item_id):  # else the outbox keeps it until its receipt
            self._acks.append(item_id)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        settled, resend = self._receipts.on_message(msg.topic, bytes(msg.payload))
        self._acks.extend(settled)
        if resend:
            self._rewind()

    # --- work done on the network thread while connected -----------------------------

    def _after_connect(self, client: paho.Client) -> None:
        if not self._just_connected:
            return
        self._just_connected = False
        online = {"state": "online", "since": self._connected_since, "reason": "connected", **self._announce}
        client.publish(self._topics.status, json.dumps(online), qos=1, retain=True)
        client.publish(self._topics.available, "online", qos=1, retain=True)
        subscriptions = self._receipts.subscriptions()
        if subscriptions:
            client.subscribe(subscriptions)
        self._send_camera_status(client, all_cameras=True)
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
            if not self._outbox_dirty:
                return
            self._outbox_dirty = False
            sent = 0
            for lane in (LANE_MAIN, LANE_CLIPS):
                window = self._ledger.window(self._window, self._cursors[lane])
                room = window - len(self._inflight)
                if room <= 0:
                    self._outbox_dirty = True  # the rest when PUBACKs make room
                    return
                items = self._outbox.peek(room, after_id=self._cursors[lane], lane=lane)
                if len(items) == room:
                    self._outbox_dirty = True  # there may be more behind them
                inflight = set(self._inflight.values())
                for item in items:
                    if self._ledger.settled(item.id) or item.id in inflight:  # known: not again
                        self._cursors[lane] = item.id
                        continue
                    if not self._send_item(client, item):
                        self._outbox_dirty = True
                        return
                    sent += 1
                if len(items) == room:
                    break  # the main lane filled the window: clips wait
            if sent or not self._outbox_dirty:
                return

    def _send_item(self, client: paho.Client, item: OutboxItem) -> bool:
        try:
            info = client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
        except ValueError as err:
            # paho checks the topic and the size before anything is sent; it will say the
            # same every time, so the item goes aside now and the next one is sent.
            self.rejected_total += 1
            self._cursors[item.lane] = item.id
            self._ledger.refused(item.id, f"refused by the MQTT client: {err}")
            self._ledger.write(force=True)
            return True
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self._cursors[item.lane] = item.id
        self.published_total += 1
        if item.qos == 0:
            self.acked_total += 1
            self._acks.append(item.id)  # no PUBACK at QoS 0: handed to the socket is all there is
        else:
            self._inflight[info.mid] = item.id
            self._ledger.sent(item.id)
            self._receipts.sent(item)
        return True

    def _rewind(self) -> None:
        """Send again from the oldest item not settled, in order (those waiting for a receipt)."""
        self._cursors = dict.fromkeys(self._cursors, 0)
        self._outbox_dirty = True

    def _send_camera_status(self, client: paho.Client, *, all_cameras: bool = False) -> None:
        for camera, state, since in self.board.camera_changes(all_cameras=all_cameras):
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
