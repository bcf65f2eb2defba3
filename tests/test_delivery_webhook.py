"""The webhook sink against a real local HTTP server that fails in every way before it answers 200."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_agent.app.config import parse_config
from edge_agent.app.wiring import delivery_of
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import WebhookConfig
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookPoster, WebhookSink
from tests.broker import Mosquitto, Subscriber, fake_jpeg, make_event, mosquitto  # noqa: F401

SECRET = b"town-webhook-secret"


class Platform(ThreadingHTTPServer):
    """Answers each POST by the next entry of `script` (then 200): a status, "timeout" or "close"."""

    def __init__(self, script: list[Any]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script = list(script)
        self.accepted: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/eagleeye"


class Handler(BaseHTTPRequestHandler):
    server: Platform

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        stamp = self.headers[TIMESTAMP_HEADER]
        expected = "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        with self.server.lock:
            self.server.requests += 1
            action = self.server.script.pop(0) if self.server.script else 200
        if (
            not hmac.compare_digest(expected, self.headers[SIGNATURE_HEADER])
            or abs(time.time() - int(stamp)) > 300
        ):
            self.server.bad_signatures += 1
            action = 401
        if action == "timeout":
            time.sleep(1.5)  # longer than the sink's timeout_s
            action = 200  # too late: the box has given up on it and sends it again
        if action == "close":
            self.close_connection = True
            self.connection.close()
            return
        if action == 200:
            with self.server.lock:
                self.server.accepted.append(json.loads(body))
        answer = b"bad field: zone" if action == 400 else b"ok"
        self.send_response(int(action))
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def platform_factory() -> Iterator[Any]:
    made: list[Platform] = []

    def make(script: list[Any]) -> Platform:
        server = Platform(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.shutdown()
        server.server_close()


def _poster(tmp_path: Path, url: str) -> tuple[Outbox, WebhookSink, WebhookPoster]:
    secret = tmp_path / "webhook.secret"
    secret.write_bytes(SECRET + b"\n")
    outbox = Outbox(tmp_path / "webhook.sqlite3", 8)
    cfg = WebhookConfig(url=url, secret_file=str(secret), timeout_s=0.5)
    return outbox, WebhookSink(outbox), WebhookPoster(cfg, outbox, Backoff(0.1, 0.4))


def test_500_timeout_closed_connection_then_200_each_event_once_in_order(
    tmp_path: Path, platform_factory: Any
) -> None:
    platform = platform_factory([500, "timeout", "close"])
    outbox, sink, poster = _poster(tmp_path, platform.url)
    for seq in range(6):
        snap = fake_jpeg(seq) if seq == 0 else None
        sink.emit(make_event(seq, snapshot=snap), snap)
    poster.start()
    try:
        assert poster.wait_drained(20) == 0
    finally:
        poster.stop()
    bodies = platform.accepted
    # The timed-out request reached the server late; the platform drops that copy by event_id.
    ids = [b["event"]["event_id"] for b in bodies]
    unique = list(dict.fromkeys(ids))
    assert unique == [make_event(seq).event_id for seq in range(6)]  # in order
    assert len(ids) - len(unique) <= 1  # only the timed-out one can come twice
    assert platform.bad_signatures == 0 and poster.failures == 3 and poster.delivered == 6
    assert base64.b64decode(bodies[0]["snapshot"]["base64"]) == fake_jpeg(0)
    assert bodies[1]["snapshot"] is None and bodies[0]["schema"] == "eagleeye.webhook/1"
    outbox.close()


def test_a_400_moves_the_item_to_the_dead_letters_with_the_answer(
    tmp_path: Path, platform_factory: Any
) -> None:
    platform = platform_factory([400])
    outbox, sink, poster = _poster(tmp_path, platform.url)
    for seq in range(3):
        sink.emit(make_event(seq), None)
    poster.start()
    try:
        assert poster.wait_drained(10) == 0
    finally:
        poster.stop()
    dead = outbox.dead_letters()
    assert len(dead) == 1 and dead[0].reason == "HTTP 400: bad field: zone"
    assert [b["event"]["event_id"] for b in platform.accepted] == [make_event(s).event_id for s in (1, 2)]
    outbox.close()


def test_a_wrong_secret_is_refused_by_the_platform(tmp_path: Path, platform_factory: Any) -> None:
    """The check in the server is real: a box signing with another secret is refused (401: dead letter)."""
    platform = platform_factory([])
    secret = tmp_path / "other.secret"
    secret.write_bytes(b"not-the-secret")
    outbox = Outbox(tmp_path / "webhook.sqlite3", 8)
    poster = WebhookPoster(WebhookConfig(url=platform.url, secret_file=str(secret), timeout_s=0.5), outbox)
    WebhookSink(outbox).emit(make_event(1), None)
    poster.start()
    try:
        assert poster.wait_drained(10) == 0
    finally:
        poster.stop()
    assert platform.bad_signatures == 1 and platform.accepted == []
    assert outbox.dead_letters()[0].reason.startswith("HTTP 401")
    outbox.close()


# --- wired by the config, with MQTT or alone ------------------------------------------------


def _config_text(tmp_path: Path, url: str, mqtt_url: str | None) -> str:
    secret = tmp_path / "webhook.secret"
    secret.write_bytes(SECRET + b"\n")
    data: dict[str, Any] = {
        "version": 1,
        "site": {"id": "laohu"},
        "device": {"id": "edge-01"},
        "outbox": {"path": str(tmp_path / "state" / "outbox.sqlite3")},
        "evidence": {"dir": str(tmp_path / "state" / "evidence")},
        "cameras": [{"id": "cam-a", "url": "rtsp://127.0.0.1:9/live"}],
        "webhook": {"url": url, "secret_file": str(secret), "timeout_s": 2},
    }
    if mqtt_url is not None:
        data["mqtt"] = {"url": mqtt_url}
    return json.dumps(data)


@pytest.mark.parametrize("beside_mqtt", [True, False])
def test_the_config_wires_the_webhook_beside_mqtt_or_alone(
    tmp_path: Path,
    platform_factory: Any,
    mosquitto: Mosquitto,  # noqa: F811
    beside_mqtt: bool,
) -> None:
    platform = platform_factory([503])
    cfg = parse_config(_config_text(tmp_path, platform.url, mosquitto.url if beside_mqtt else None))
    delivery = delivery_of(cfg)
    with Subscriber(mosquitto.port, ["eagleeye/v1/+/+/events/#"]) as sub:
        delivery.start()
        try:
            for seq in range(3):
                snap = fake_jpeg(seq)
                delivery.sink.emit(make_event(seq, snapshot=snap), snap)
            assert delivery.wait_drained(15) == 0
            if beside_mqtt:
                sub.wait_events(3, 10)
        finally:
            delivery.close()
        assert [b["event"]["event_id"] for b in platform.accepted] == [
            make_event(s).event_id for s in range(3)
        ]
        assert len(sub.events()) == (3 if beside_mqtt else 0)


def test_a_bad_webhook_section_is_named_by_validate(tmp_path: Path) -> None:
    from edge_agent.app.checks import check_text

    text = _config_text(tmp_path, "ftp://platform.example/x", None).replace(
        '"timeout_s": 2', '"timeout_s": 0'
    )
    problems = [str(p) for p in check_text(text, environment=False).problems]
    assert any("webhook.url" in p and "http" in p for p in problems), problems
    assert any("webhook.timeout_s" in p for p in problems), problems
