"""The webhook sink: each event POSTed to a platform without MQTT, signed, through a durable outbox.

`WebhookSink` stores each event with its snapshot (base64) as one JSON body in
an outbox of its own (the same `Outbox`: durable, capped by `outbox.max_mb`,
dropping `info` first, with dead letters), beside the MQTT one. `WebhookPoster`
drains it on its own thread, one request at a time, oldest first, so the order
per camera holds:

- a 2xx answer is the receipt: the item leaves the outbox;
- a 4xx other than 408 and 429 says the platform will never take this body: the
  item goes to the dead letters with the answer's status and first 500 bytes,
  and the next one is sent;
- anything else (5xx, 408, 429, a timeout, a closed connection, no route) is
  retried with backoff (1 s doubling to 60 s), the same item first.

Each request carries `X-Eagleeye-Timestamp` (Unix seconds) and
`X-Eagleeye-Signature: sha256=<hex>`, the HMAC-SHA256 with the secret of
`webhook.secret_file` over `<timestamp>.<body>`: the platform recomputes it,
and refuses a timestamp too far from its clock (a replayed request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge_agent.core.backoff import Backoff
from edge_agent.core.config import WebhookConfig, redact
from edge_agent.core.types import Event
from edge_agent.delivery.outbox import Outbox, OutboxError

logger = logging.getLogger(__name__)

WEBHOOK_SCHEMA = "eagleeye.webhook/1"
TOPIC = "webhook"  # the outbox's topic column: every item goes to the one URL
SIGNATURE_HEADER = "X-Eagleeye-Signature"
TIMESTAMP_HEADER = "X-Eagleeye-Timestamp"
_ANSWER_MAX = 500


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for one request."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def read_secret(path: str) -> bytes:
    """The signing secret (one line); raises ValueError naming the file."""
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as err:
        raise ValueError(f"cannot read webhook.secret_file {path}: {err.strerror or err}") from err
    if not secret:
        raise ValueError(f"webhook.secret_file {path} is empty")
    return secret


def webhook_body(event: Event, snapshot_jpeg: bytes | None) -> bytes:
    """One request body: the event as published over MQTT, and its snapshot."""
    snapshot: dict[str, Any] | None = None
    if snapshot_jpeg is not None:
        snapshot = {"content_type": "image/jpeg", "base64": base64.b64encode(snapshot_jpeg).decode("ascii")}
    body = {"schema": WEBHOOK_SCHEMA, "event": json.loads(event.to_json()), "snapshot": snapshot}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookSink:
    """`EventSink` that stores each event for the webhook; never raises into a camera's pipeline."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.emitted_total = 0
        self.lost_unstored = 0

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None:
        body = webhook_body(event, snapshot_jpeg)
        try:
            self._outbox.put(TOPIC, body, camera=event.camera, severity=event.severity)
        except OutboxError as err:
            # The MQTT sink holds events in memory through a full disk; this one counts the loss.
            self.lost_unstored += 1
            if self.lost_unstored == 1 or self.lost_unstored % 100 == 0:
                logger.error("%s; %d webhook event(s) lost so far", err, self.lost_unstored)
            return
        self.emitted_total += 1

    def close(self) -> None:
        """The outbox belongs to whoever opened it."""


class WebhookPoster:
    """Drains the webhook outbox to `webhook.url`, in order, on its own thread."""

    def __init__(self, cfg: WebhookConfig, outbox: Outbox, backoff: Backoff | None = None) -> None:
        self._cfg = cfg
        self._outbox = outbox
        self._backoff = backoff or Backoff(1.0, 60.0)
        self._shown = redact(cfg.url)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failures = 0
        self.dead_lettered = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._outbox.add_listener(self._wake.set)
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._outbox.remove_listener(self._wake.set)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait_drained(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while self._outbox.depth() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._outbox.depth()

    def counters(self) -> dict[str, Any]:
        return {
            "depth": self._outbox.depth(),
            "delivered": self.delivered,
            "failures": self.failures,
            "dead_lettered": self.dead_lettered,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                items = self._outbox.peek(1)
            except OutboxError as err:
                self._retry(str(err))
                continue
            if not items:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            item = items[0]
            verdict, detail = self._post(item.payload)
            try:
                if verdict == "delivered":
                    self._outbox.ack(item.id)
                    self.delivered += 1
                elif verdict == "refused":
                    self._outbox.dead_letter(item.id, detail, 1)
                    self.dead_lettered += 1
                    logger.error(
                        "webhook %s refused outbox item %d: %s; moved to the dead letters",
                        self._shown,
                        item.id,
                        detail,
                    )
            except OutboxError as err:
                self._retry(str(err))
                continue
            if verdict == "retry":
                self._retry(detail)
            else:
                if self.last_error is not None:
                    logger.warning("webhook %s takes events again", self._shown)
                self.last_error = None
                self._backoff.reset()

    def _retry(self, why: str) -> None:
        self.failures += 1
        delay = self._backoff.next_delay()
        if self.last_error is None:
            logger.warning("webhook %s: %s; retrying with backoff (now %.1f s)", self._shown, why, delay)
        self.last_error = why
        self._stop.wait(delay)

    def _post(self, body: bytes) -> tuple[str, str]:
        """(delivered | refused | retry, what happened)."""
        try:
            # Read at every request, like mqtt.password_file: a fixed file needs no restart.
            secret = read_secret(self._cfg.secret_file)
        except ValueError as err:
            return "retry", str(err)
        timestamp = str(int(time.time()))
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked by the config: http/https)
            self._cfg.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self._cfg.timeout_s) as answer:  # noqa: S310
                answer.read()
                return "delivered", f"HTTP {answer.status}"
        except urllib.error.HTTPError as err:
            text = err.read(_ANSWER_MAX).decode("utf-8", "replace")
            detail = f"HTTP {err.code}: {text}".strip()
            if 400 <= err.code < 500 and err.code not in (408, 429):
                return "refused", detail
            return "retry", detail
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            reason = getattr(err, "reason", None) or err
            return "retry", f"{type(err).__name__}: {reason}"
