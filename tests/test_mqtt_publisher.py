"""The MQTT publisher against a real Mosquitto: delivery, outages, crashes, auth, TLS, Last Will;
and doctor's broker check (`probe_broker`), which shares its client set-up."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.contract.mqtt_client import parse_broker_url, probe_broker
from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig, TlsConfig
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import (
    Message,
    Mosquitto,
    Subscriber,
    assert_order_per_camera,
    dedup,
    fake_jpeg,
    make_certificates,
    make_event,
    make_password_file,
    mosquitto,  # noqa: F401  (fixture)
    mosquitto_factory,  # noqa: F401  (fixture)
)

TOPICS = Topics("eagleeye", "laohu", "edge-01")
EVENTS = "eagleeye/v1/+/+/events/#"
SNAPSHOTS = "eagleeye/v1/+/+/snapshots/#"
# past keepalive_s * 1.5 and many times the publisher's largest backoff (1 s); longer by the variable
OUTAGE_S = float(os.environ.get("EDGE_AGENT_TEST_OUTAGE_S", "10"))
HELPER = Path(__file__).resolve().parent / "helpers" / "publisher_proc.py"
FAST = Backoff(0.2, 1.0)


def _publisher(url: str, outbox: Outbox, *, stats_interval_s: float = 60.0, **cfg: Any) -> MqttPublisher:
    config = MqttConfig(url=url, keepalive_s=5, stats_interval_s=stats_interval_s, **cfg)
    return MqttPublisher(config, outbox, TOPICS, backoff=Backoff(0.2, 1.0))


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "outbox.sqlite3", 16)
    yield ob
    ob.close()


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def _status(msgs: list[Message], topic: str) -> list[dict[str, Any]]:
    return [m.json() for m in msgs if m.topic == topic]


# --- units ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.local", ("broker.local", 1883, False, None, None)),
        ("mqtts://broker.local", ("broker.local", 8883, True, None, None)),
        ("mqtts://10.0.0.2:9883", ("10.0.0.2", 9883, True, None, None)),
        ("mqtt://dev:s%40cret@h:1884", ("h", 1884, False, "dev", "s@cret")),
    ],
)
def test_parse_broker_url(url: str, expected: tuple[Any, ...]) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize("url", ["http://h", "mqtt://", "mqtt://h:port"])
def test_parse_broker_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match=r"MQTT URL|mqtt://"):
        parse_broker_url(url)


def test_tls_settings_need_mqtts(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="mqtts://"):
        _publisher("mqtt://h", outbox, tls=TlsConfig(ca="/ca.crt"))


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    no_jitter = Backoff(1.0, 60.0, jitter=0.3, rand=lambda: 0.0)
    assert [no_jitter.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    no_jitter.reset()
    assert no_jitter.next_delay() == 1.0
    full_jitter = Backoff(1.0, 60.0, jitter=0.3, rand=lambda: 1.0)
    assert [round(full_jitter.next_delay(), 3) for _ in range(3)] == [0.7, 1.4, 2.8]
    with pytest.raises(ValueError):
        Backoff(0, 1)


# --- against a real broker -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_round_trip(mosquitto: Mosquitto, outbox: Outbox, protocol: str) -> None:  # noqa: F811
    sink = OutboxSink(outbox, TOPICS)
    with Subscriber(mosquitto.port, [EVENTS, SNAPSHOTS, TOPICS.status], protocol=protocol) as sub:
        pub = _publisher(mosquitto.url, outbox, protocol=protocol)
        pub.start()
        jpegs: dict[str, bytes] = {}
        for seq in range(40):
            snap = fake_jpeg(seq) if seq % 4 == 0 else None
            event = make_event(seq, camera=("cam-a", "cam-b")[seq % 2], snapshot=snap)
            if snap is not None:
                jpegs[event.event_id] = snap
            sink.emit(event, snap)
        assert pub.wait_drained(10) == 0
        events = sub.wait_events(40, 10)
        pub.stop(5)
        msgs = sub.wait_for(lambda m: any(s["state"] == "offline" for s in _status(m, TOPICS.status)), 5)
    assert len(events) == 40 and len(dedup(events)) == 40  # no outage: no duplicates either
    for e in events:
        assert validate("event", e) == []
    assert_order_per_camera(events)
    order = [
        m.topic.rsplit("/", 1)[-1] if "/snapshots/" in m.topic else m.json().get("event_id") for m in msgs
    ]
    for event_id, jpeg in jpegs.items():
        snap_msg = next(m for m in msgs if m.topic == TOPICS.snapshot(event_id))
        assert snap_msg.payload == jpeg and snap_msg.qos == 1
        assert order.index(event_id) < len(order) - 1 - order[::-1].index(event_id)  # snapshot first
    statuses = _status(msgs, TOPICS.status)
    assert [s["state"] for s in statuses] == ["online", "offline"]
    assert statuses[-1]["reason"] == "stopped"
    assert all(validate("status", s) == [] for s in statuses)
    assert pub.counters()["acked"] == 50 and pub.counters()["reconnects"] == 0


def test_broker_outage_no_loss_no_reorder(mosquitto: Mosquitto, outbox: Outbox) -> None:  # noqa: F811
    sink = OutboxSink(outbox, TOPICS)
    pub = _publisher(mosquitto.url, outbox)
    sub = Subscriber(mosquitto.port, [EVENTS, SNAPSHOTS], client_id="platform-outage").start()
    pub.start()
    seq = 0

    def emit_for(seconds: float, rate: float) -> None:
        nonlocal seq
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            snap = fake_jpeg(seq) if seq % 10 == 0 else None
            cam = ("cam-a", "cam-b", "cam-c")[seq % 3]
            sink.emit(make_event(seq, camera=cam, snapshot=snap), snap)
            seq += 1
            time.sleep(1 / rate)

    try:
        emit_for(1.0, 50)
        sub.wait_events(20, 10)
        emit_for(0.3, 200)  # some are in flight when the broker goes
        mosquitto.stop()
        emit_for(OUTAGE_S, 5)
        assert not pub.connected and outbox.depth() > 0
        mosquitto.start()
        emit_for(1.0, 50)
        assert pub.wait_drained(30) == 0
        events = sub.wait_events(seq, 30)
    finally:
        pub.stop(5)
        sub.close()
    unique = dedup(events)
    assert sorted(int(e["details"]["seq"]) for e in unique) == list(range(seq))
    assert_order_per_camera(unique)
    assert pub.counters()["reconnects"] >= 1


def _spawn(url: str, outbox_path: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(HELPER.parent.parent.parent))
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), "--url", url, "--outbox", str(outbox_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def test_sigkill_with_backlog_loses_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:  # noqa: F811
    outbox_path = tmp_path / "outbox.sqlite3"
    progress = tmp_path / "progress.txt"
    sub = Subscriber(mosquitto.port, [EVENTS], client_id="platform-kill").start()
    try:
        first = _spawn(
            mosquitto.url, outbox_path, "--events", "100000", "--rate", "300", "--progress", str(progress)
        )
        try:
            sub.wait_events(100, 15)
            mosquitto.stop()
            committed_at_stop = len(progress.read_text().split())
            _wait(lambda: len(progress.read_text().split()) > committed_at_stop + 300, 15, "a backlog")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(5)
        committed = [int(s) for s in progress.read_text().split()]
        with sqlite3.connect(outbox_path) as db:
            backlog = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        assert backlog >= 300
        mosquitto.start()
        second = _spawn(mosquitto.url, outbox_path, "--events", "0")
        try:
            events = sub.wait_events(len(committed), 30)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(10) == 0
    finally:
        sub.close()
    unique = dedup(events)
    seqs = {int(e["details"]["seq"]) for e in unique}
    assert set(committed) <= seqs
    assert len(seqs - set(committed)) <= 1  # put committed, killed before it was written down
    assert_order_per_camera(unique)


def test_wrong_password_then_fixed(
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    outbox: Outbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    right, wrong = "right-horse-battery", "wrong-staple-4711"
    passwd = make_password_file(tmp_path / "passwd", {"edge-01": right, "platform": "platform-secret"})
    broker = mosquitto_factory(password_file=passwd).start()
    secret_file = tmp_path / "mqtt.pass"
    secret_file.write_text(wrong + "\n")
    sink = OutboxSink(outbox, TOPICS)
    for seq in range(10):
        sink.emit(make_event(seq), None)
    sub = Subscriber(broker.port, [EVENTS], username="platform", password="platform-secret").start()
    pub = _publisher(broker.url, outbox, username="edge-01", password_file=str(secret_file))
    pub.start()
    try:
        refusals = lambda: [r for r in caplog.records if "refused the connection" in r.getMessage()]  # noqa: E731
        _wait(lambda: len(refusals()) >= 3, 15, "three refusals")
        assert not pub.connected and outbox.depth() == 10
        line = refusals()[0]
        assert line.levelno == logging.WARNING and line.exc_info is None and "\n" not in line.getMessage()
        assert "Not authorized" in line.getMessage() or "Bad user name or password" in line.getMessage()
        assert "check mqtt.username" in line.getMessage() and "retrying in" in line.getMessage()
        secret_file.write_text(right + "\n")
        assert pub.wait_drained(15) == 0
        events = sub.wait_events(10, 10)
    finally:
        pub.stop(5)
        sub.close()
    assert sorted(int(e["details"]["seq"]) for e in dedup(events)) == list(range(10))
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        assert wrong not in text and right not in text


def test_tls_with_client_certificate(
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    outbox: Outbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pki = make_certificates(tmp_path / "pki")
    broker = mosquitto_factory(tls=pki, require_certificate=True).start()
    assert broker.url.startswith("mqtts://127.0.0.1:")
    sink = OutboxSink(outbox, TOPICS)
    with Subscriber(broker.port, [EVENTS, SNAPSHOTS], tls=pki) as sub:
        tls = TlsConfig(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
        pub = _publisher(broker.url, outbox, tls=tls)
        pub.start()
        try:
            for seq in range(5):
                snap = fake_jpeg(seq)
                sink.emit(make_event(seq, snapshot=snap), snap)
            assert pub.wait_drained(10) == 0
            events = sub.wait_events(5, 10)
        finally:
            pub.stop(5)
    assert [e["details"]["seq"] for e in events] == [0, 1, 2, 3, 4]

    # Without the client certificate, and with a CA that did not sign the server: clear lines, no traceback.
    other = make_certificates(tmp_path / "other-pki")
    with Outbox(tmp_path / "o2.sqlite3", 1) as ob2, Outbox(tmp_path / "o3.sqlite3", 1) as ob3:
        caplog.clear()
        no_cert = _publisher(broker.url, ob2, tls=TlsConfig(ca=str(pki.ca)))
        wrong_ca = _publisher(broker.url, ob3, tls=TlsConfig(ca=str(other.ca)))
        no_cert.start()
        wrong_ca.start()
        try:
            lines = lambda: [r.getMessage() for r in caplog.records if r.name == "edge_agent.delivery.mqtt"]  # noqa: E731
            _wait(lambda: any("certificate verification failed" in m for m in lines()), 10, "a CA error")
            _wait(lambda: any("client certificate" in m for m in lines()), 10, "a client certificate hint")
            assert not no_cert.connected and not wrong_ca.connected
            assert all(r.exc_info is None for r in caplog.records if r.name == "edge_agent.delivery.mqtt")
        finally:
            no_cert.stop(2)
            wrong_ca.stop(2)


def test_last_will_on_sigkill_then_online(mosquitto: Mosquitto, tmp_path: Path) -> None:  # noqa: F811
    outbox_path = tmp_path / "outbox.sqlite3"
    with Subscriber(mosquitto.port, [TOPICS.status]) as sub:
        first = _spawn(mosquitto.url, outbox_path)
        try:
            sub.wait_for(lambda m: [s["state"] for s in _status(m, TOPICS.status)] == ["online"], 10)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(5)
        msgs = sub.wait_for(lambda m: len(_status(m, TOPICS.status)) >= 2, 10)
        will = _status(msgs, TOPICS.status)[1]
        assert will["state"] == "offline" and will["reason"] == "connection_lost"
        assert validate("status", will) == []
    with Subscriber(mosquitto.port, [TOPICS.status]) as late:  # a platform that connects later
        retained = late.wait_for(lambda m: len(m) >= 1, 5)[0]
        assert retained.retain and retained.json()["state"] == "offline"
        second = _spawn(mosquitto.url, outbox_path)
        try:
            msgs = late.wait_for(lambda m: len(m) >= 2, 10)
            assert msgs[1].json()["state"] == "online" and validate("status", msgs[1].json()) == []
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(10) == 0
        msgs = late.wait_for(lambda m: len(m) >= 3, 5)
        assert msgs[2].json()["state"] == "offline" and msgs[2].json()["reason"] == "stopped"


def test_outbox_cap_drops_info_first_and_reports_it(mosquitto: Mosquitto, tmp_path: Path) -> None:  # noqa: F811
    ob = Outbox(tmp_path / "outbox.sqlite3", max_mb=8 / 1024)  # 8 KiB: about a dozen events
    sink = OutboxSink(ob, TOPICS)
    severity = {seq: "alert" if seq % 4 == 0 else "info" for seq in range(24)}
    for seq in range(24):
        sink.emit(make_event(seq, severity=severity[seq]), None)
    assert ob.dropped_total > 0
    assert ob.dropped_by_severity["alert"] == 0 and ob.dropped_by_severity["warning"] == 0
    with Subscriber(mosquitto.port, [EVENTS, TOPICS.stats]) as sub:
        pub = _publisher(mosquitto.url, ob, stats_interval_s=0.3)
        pub.start()
        try:
            assert pub.wait_drained(10) == 0
            msgs = sub.wait_for(lambda m: sum(x.topic == TOPICS.stats for x in m) >= 2, 5)
        finally:
            pub.stop(5)
            ob.close()
    stats = [m.json() for m in msgs if m.topic == TOPICS.stats]
    for s in stats:
        assert validate("stats", s) == []
    assert stats[-1]["outbox"]["dropped_total"] == ob.dropped_total
    assert stats[-1]["outbox"]["dropped_by_severity"]["info"] == ob.dropped_total
    assert next(m for m in msgs if m.topic == TOPICS.stats).qos == 0
    delivered = {int(m.json()["details"]["seq"]) for m in msgs if "/events/" in m.topic}
    assert {s for s, sev in severity.items() if sev == "alert"} <= delivered
    assert len(delivered) == 24 - ob.dropped_total


def test_corrupt_outbox_at_start_is_reported_and_publisher_runs(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(os.urandom(4096))
    ob = Outbox(path, 1)
    assert ob.recovered_corrupt and ob.corrupt_moved_to is not None and ob.corrupt_moved_to.exists()
    with Subscriber(mosquitto.port, [EVENTS, TOPICS.stats]) as sub:
        pub = _publisher(mosquitto.url, ob, stats_interval_s=0.3)
        pub.start()
        try:
            OutboxSink(ob, TOPICS).emit(make_event(1), None)
            assert pub.wait_drained(10) == 0
            msgs = sub.wait_for(lambda m: any(x.topic == TOPICS.stats for x in m) and len(m) >= 2, 5)
        finally:
            pub.stop(5)
            ob.close()
    stats = next(m.json() for m in msgs if m.topic == TOPICS.stats)
    assert stats["outbox"]["recovered_corrupt"] is True


def test_status_is_restored_after_the_broker_loses_it(mosquitto: Mosquitto, outbox: Outbox) -> None:  # noqa: F811
    cam_topic = TOPICS.camera_status("bridge-east")
    pub = _publisher(mosquitto.url, outbox)
    pub.board.set_camera_status("bridge-east", "online")
    pub.start()
    try:
        with Subscriber(mosquitto.port, [cam_topic]) as sub:
            sub.wait_for(lambda m: len(m) >= 1, 5)
            pub.board.set_camera_status("bridge-east", "stalled")
            pub.board.set_camera_status("bridge-east", "stalled")  # unchanged: not sent again
            msgs = sub.wait_for(lambda m: len(m) >= 2, 5)
            time.sleep(0.3)
            assert [m.json()["state"] for m in sub.snapshot()] == ["online", "stalled"]
            first_since = msgs[1].json()["since"]
        mosquitto.kill()  # no persistence written: the broker forgets every retained message
        mosquitto.start()
        _wait(lambda: pub.connected, 10, "a reconnect")
        with Subscriber(mosquitto.port, [cam_topic, TOPICS.status]) as late:
            msgs = late.wait_for(lambda m: len(m) >= 2, 5)
        by_topic = {m.topic: m.json() for m in msgs}
        assert by_topic[cam_topic] == {"state": "stalled", "since": first_since}
        assert by_topic[TOPICS.status]["state"] == "online"
        assert pub.counters()["reconnects"] == 1
        with pytest.raises(ValueError, match="camera state"):
            pub.board.set_camera_status("bridge-east", "broken")
    finally:
        pub.stop(5)


def test_wait_drained_reports_what_waits_while_the_broker_is_down(
    mosquitto: Mosquitto,  # noqa: F811
    outbox: Outbox,
) -> None:
    mosquitto.stop()
    sink = OutboxSink(outbox, TOPICS)
    for seq in range(3):
        sink.emit(make_event(seq), fake_jpeg(seq) if seq == 0 else None)
    pub = _publisher(mosquitto.url, outbox)
    pub.start()
    try:
        assert pub.wait_drained(0.5) == 4
        mosquitto.start()
        assert pub.wait_drained(10) == 0
        stats = pub.stats_payload()
        assert validate("stats", stats) == []
        assert stats["mqtt"]["connect_failures"] >= 1 and stats["outbox"]["depth"] == 0
    finally:
        pub.stop(5)


def test_status_board_stats_are_merged(outbox: Outbox) -> None:
    pub = MqttPublisher(MqttConfig(url="mqtt://127.0.0.1:1"), outbox, TOPICS)
    alone = pub.stats_payload()
    assert "cameras" not in alone and validate("stats", alone) == []
    cameras = {"cam-a": {"fps": 5.0, "skipped_frames": 3, "reconnects": 0}}
    pub.board.put_stats({"cameras": cameras, "outbox": "x"})
    merged = pub.stats_payload()
    assert merged["cameras"]["cam-a"]["fps"] == 5.0 and isinstance(merged["outbox"], dict)
    assert validate("stats", merged) == []
    json.dumps(merged)


# --- doctor's broker check --------------------------------------------------------------------


def test_the_broker_check_passes_on_a_live_broker_and_its_test_message_arrives(
    mosquitto: Mosquitto,  # noqa: F811
) -> None:
    topic = f"{TOPICS.base}/doctor"
    with Subscriber(mosquitto.port, [f"{TOPICS.base}/#"]) as sub:
        ok, detail = probe_broker(MqttConfig(url=mosquitto.url), topic, timeout_s=5)
        assert ok, detail
        assert "connected in" in detail and "test message acknowledged" in detail and "\n" not in detail
        msgs = sub.wait_for(lambda m: any(x.topic == topic for x in m), 5)
    # one message, not retained, and nothing else on the device's topics (its status untouched)
    assert [(m.topic, m.retain, m.json()["check"]) for m in msgs] == [(topic, False, "doctor")]


@pytest.mark.parametrize(
    ("userinfo", "fields"),
    [("edge-01:url-horse-battery@", {}), ("", {"username": "edge-01", "password": "field-horse-battery"})],
    ids=["password in the URL", "mqtt.password"],
)
def test_the_broker_check_on_a_closed_port_fails_with_one_plain_line_and_no_password(
    mosquitto: Mosquitto,  # noqa: F811
    userinfo: str,
    fields: dict[str, str],
) -> None:
    mosquitto.kill()  # the broker's port, closed
    cfg = MqttConfig(url=f"mqtt://{userinfo}127.0.0.1:{mosquitto.port}", **fields)
    ok, detail = probe_broker(cfg, f"{TOPICS.base}/doctor", timeout_s=5)
    assert not ok
    assert detail.startswith("cannot reach mqtt://") and "refused" in detail.lower(), detail
    assert "\n" not in detail and "Traceback" not in detail and "Error(" not in detail, detail
    assert "horse-battery" not in detail and ("edge-01:***@" in detail) == bool(userinfo), detail
