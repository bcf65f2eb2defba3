"""End-to-end receipts against real Mosquitto processes and `edge-agent listen --receipts`.

The platform here is `listen --receipts --store FILE` (a persistent session, like the
town console): it appends each new event to FILE, synced, and only then sends its
receipt, so "stored exactly once" is checked by reading FILE. The broker is killed
with SIGKILL before it ever saves its queue (Mosquitto saves on a clean stop and every
`autosave_interval`, 30 minutes by default).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.contract.receipts import (
    Receipt,
    ReceiptError,
    parse_platform_status,
    parse_receipts,
    platform_status,
    receipt_payloads,
)
from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.delivery.awaiting import AwaitingReceipts, receipt_key
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import ROOT, Mosquitto, Subscriber, fake_jpeg, make_event, mosquitto  # noqa: F401

TOPICS = Topics("eagleeye", "laohu", "edge-01")
PLATFORM_ID = "town-platform"


# --- the contract and the bookkeeping, one stage at a time ------------------------------


def test_receipts_round_trip_in_batches_and_follow_their_schema() -> None:
    receipts = [Receipt(f"edge-01-cam-a-{i:06d}", "start", "2026-11-26T08:15:00.400Z") for i in range(1200)]
    receipts.append(Receipt("edge-01-cam-a-000001", clip=True))
    payloads = list(receipt_payloads(receipts))
    assert len(payloads) == 3  # at most 500 items a message
    parsed = [r for p in payloads for r in parse_receipts(p)]
    assert parsed == receipts
    assert all(validate("receipt", json.loads(p)) == [] for p in payloads)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b"not json", "not JSON"),
        (b'{"schema": "eagleeye.receipt/1", "items": []}', "items"),
        (b'{"schema": "eagleeye.receipt/1", "items": [{"event_id": "x", "phase": "middle"}]}', "items[0]"),
        (b'{"schema": "eagleeye.receipt/2", "items": [{"event_id": "x", "phase": "end"}]}', "schema"),
    ],
)
def test_a_bad_receipt_is_refused_with_where(payload: bytes, where: str) -> None:
    with pytest.raises(ReceiptError, match="receipt") as err:
        parse_receipts(payload)
    assert where in str(err.value)


def test_platform_status_round_trip() -> None:
    payload = platform_status("online", receipts=True, since="2026-11-26T08:00:00Z", name="town")
    assert validate("platform-status", json.loads(payload)) == []
    status = parse_platform_status(payload)
    assert (status.state, status.receipts, status.name) == ("online", True, "town")
    with pytest.raises(ReceiptError, match="receipts"):
        parse_platform_status(b'{"schema": "eagleeye.platform-status/1", "state": "online", "since": "x"}')


def test_a_platform_with_clip_receipts_says_so_and_its_clip_receipt_settles_every_chunk() -> None:
    payload = platform_status("online", receipts=True, since="2026-11-26T08:00:00Z", clip_receipts=True)
    assert validate("platform-status", json.loads(payload)) == []
    assert parse_platform_status(payload).clip_receipts is True
    assert (
        parse_platform_status(
            platform_status("online", receipts=True, since="2026-11-26T08:00:00Z")
        ).clip_receipts
        is False
    )
    start = make_event(1)
    chunk = TOPICS.clip(start.event_id, 0)
    assert receipt_key(chunk, b"\0") is None  # no clip receipts announced: leaves on its PUBACK
    awaiting = AwaitingReceipts(timeout_s=5)
    keys = [receipt_key(TOPICS.event("cam-a", "dumping"), start.to_json().encode()),
            *(receipt_key(TOPICS.clip(start.event_id, i), b"\0", clips=True) for i in range(3))]  # fmt: skip
    for item_id, key in enumerate(keys, start=1):
        assert key is not None
        awaiting.sent(item_id, key)
        awaiting.pubacked(item_id, now=100.0)
    assert awaiting.receipt([Receipt.of_event(json.loads(start.to_json()))]) == [1]  # the phase, no chunk
    assert awaiting.resend_all() == [2, 3, 4]  # no clip receipt in time: the chunks go again
    assert awaiting.receipt([Receipt(start.event_id, clip=True)]) == [2, 3, 4]
    assert len(awaiting) == 0


def test_a_receipt_settles_its_phase_and_the_snapshot_before_it() -> None:
    start = make_event(1, snapshot=fake_jpeg(1))
    update_a = make_event(1, phase="update")
    update_b = dataclasses.replace(update_a, ts="2026-11-26T08:16:00.000Z")
    snap_key = receipt_key(TOPICS.snapshot(start.event_id), fake_jpeg(1))
    assert snap_key is not None and snap_key.phase is None
    assert receipt_key(TOPICS.counts("cam-a", "visitors"), b"{}") is None  # leaves on its PUBACK
    awaiting = AwaitingReceipts(timeout_s=5)
    topic = TOPICS.event("cam-a", "dumping")
    keys = [snap_key, *(receipt_key(topic, e.to_json().encode()) for e in (start, update_a, update_b))]
    for item_id, key in enumerate(keys, start=1):
        assert key is not None
        awaiting.sent(item_id, key)
        assert awaiting.pubacked(item_id, now=100.0)
    assert len(awaiting) == 4
    assert awaiting.receipt([Receipt.of_event(json.loads(start.to_json()))]) == [1, 2]
    assert awaiting.receipt([Receipt(update_a.event_id, "update", update_b.ts)]) == [4]  # only that copy
    assert awaiting.receipt([Receipt("someone-else", "start")]) == []
    assert awaiting.unknown_receipts == 1
    assert not awaiting.due(now=104.0) and awaiting.due(now=105.0)
    assert awaiting.resend_all() == [3] and awaiting.resends == 1
    awaiting.pubacked(3, now=110.0)
    assert not awaiting.due(now=119.0) and awaiting.due(now=120.0)  # the wait doubled
    assert awaiting.receipt([Receipt(update_a.event_id, "update")]) == [3]  # no ts: every copy
    assert len(awaiting) == 0


# --- helpers ------------------------------------------------------------------------------


class Listen:
    """`edge-agent listen --receipts --store FILE` in its own process, persistent session."""

    def __init__(self, url: str, store: Path, *, receipts: bool = True) -> None:
        self.url = url
        self.store = store
        self.receipts = receipts
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = store.with_suffix(".log")

    def start(self) -> Listen:
        args = ["--url", self.url, "--store", str(self.store), "--client-id", PLATFORM_ID]
        if self.receipts:
            args.append("--receipts")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with self.log.open("ab") as log:
            mark = log.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent.tools.listen", *args],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        _wait(lambda: "connected to" in self.log.read_text()[mark:], 15, "listen to connect")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stored(self) -> list[tuple[str, str, str]]:
        if not self.store.exists():
            return []
        out = []
        for line in self.store.read_bytes().splitlines():
            event = json.loads(line)
            out.append((event["event_id"], event["phase"], event["ts"]))
        return out


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class Box:
    """One box's outbox, sink and publisher, in this process."""

    def __init__(self, tmp: Path, url: str, device: str = "edge-01", max_mb: float = 32, **cfg: Any) -> None:
        self.topics = Topics("eagleeye", "laohu", device)
        self.device = device
        self.outbox = Outbox(tmp / f"{device}.sqlite3", max_mb)
        settings = MqttConfig(url=url, keepalive_s=5, stats_interval_s=60, **cfg)
        self.publisher = MqttPublisher(settings, self.outbox, self.topics, backoff=Backoff(0.2, 1.0))
        self.sink = OutboxSink(self.outbox, self.topics)

    def emit(self, seq: int) -> tuple[str, str, str]:
        snap = fake_jpeg(seq) if seq % 3 == 0 else None
        event = make_event(seq, device=self.device, camera=("cam-a", "cam-b")[seq % 2], snapshot=snap)
        self.sink.emit(event, snap)
        return event.event_id, event.phase, event.ts

    def receipts(self) -> dict[str, Any]:
        counters: dict[str, Any] = self.publisher.counters()["receipts"]
        return counters

    def close(self) -> None:
        self.publisher.stop(5)
        self.outbox.close()


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[list[Box]]:
    made: list[Box] = []
    yield made
    for box in made:
        box.close()


def _box_sees_the_platform(box: Box) -> None:
    _wait(lambda: box.receipts()["waiting"], 10, "the box to see a platform announcing receipts")


# --- the broker dies with the backlog in its memory ---------------------------------------


@pytest.mark.parametrize("how", ["killed before any save", "persistence file deleted"])
def test_broker_loses_its_memory_nothing_is_lost(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    boxes: list[Box],
    how: str,
) -> None:
    platform = Listen(mosquitto.url, tmp_path / "stored.jsonl").start()
    box = Box(tmp_path, mosquitto.url, receipt_timeout_s=3)
    boxes.append(box)
    box.publisher.start()
    _box_sees_the_platform(box)
    platform.stop()  # the console is away: the broker queues for its persistent session
    sent = [box.emit(seq) for seq in range(18)]
    items = 18 + 6  # six of them with a snapshot
    _wait(lambda: box.receipts()["awaiting_receipt"] == items, 10, "every PUBACK")
    assert box.outbox.depth() == items  # acknowledged by the broker, still kept
    if how == "killed before any save":
        mosquitto.kill()
    else:
        mosquitto.stop()  # a clean stop saves the queue ...
        (mosquitto.workdir / "mosquitto.db").unlink()  # ... and the file is lost
    mosquitto.start()  # empty: no session, no queue, no retained status
    platform.start()
    _wait(lambda: box.outbox.depth() == 0, 30, "the box's outbox to empty on receipts")
    stored = platform.stored()
    assert sorted(stored) == sorted(sent) and len(stored) == 18  # each once
    assert box.receipts()["awaiting_receipt"] == 0
    platform.stop()


# --- the platform is killed during a burst from five boxes ---------------------------------


def test_platform_killed_during_a_burst_from_five_boxes(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    boxes: list[Box],
) -> None:
    platform = Listen(mosquitto.url, tmp_path / "stored.jsonl").start()
    for n in range(5):
        boxes.append(Box(tmp_path, mosquitto.url, device=f"edge-0{n + 1}", receipt_timeout_s=2))
    for box in boxes:
        box.publisher.start()
    for box in boxes:
        _box_sees_the_platform(box)
    sent: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def burst(box: Box) -> None:
        for seq in range(40):
            key = box.emit(seq)
            with lock:
                sent.append(key)
            time.sleep(0.02)

    threads = [threading.Thread(target=burst, args=(box,)) for box in boxes]
    for t in threads:
        t.start()
    _wait(lambda: len(platform.stored()) >= 40, 20, "part of the burst stored")
    platform.kill()  # SIGKILL: what it received and had not stored is gone with it
    for t in threads:
        t.join()
    time.sleep(1.0)
    platform.start()
    _wait(lambda: all(box.outbox.depth() == 0 for box in boxes), 60, "every box's outbox to empty")
    stored = platform.stored()
    counts = Counter(stored)
    assert len(sent) == 200 and set(counts) == set(sent)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    platform.stop()


# --- a platform that sends no receipts -----------------------------------------------------


def test_a_subscriber_without_receipts_under_auto_gets_today_s_delivery(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    boxes: list[Box],
) -> None:
    box = Box(tmp_path, mosquitto.url)  # mqtt.receipts: auto, the default
    boxes.append(box)
    with Subscriber(mosquitto.port, ["eagleeye/v1/+/+/events/#"]) as sub:
        box.publisher.start()
        sent = [box.emit(seq) for seq in range(30)]
        assert box.publisher.wait_drained(10) == 0  # emptied on the PUBACKs
        events = sub.wait_events(30, 10)
    assert sorted((e["event_id"], e["phase"], e["ts"]) for e in events) == sorted(sent)  # each once
    receipts = box.receipts()
    assert receipts["waiting"] is False and receipts["awaiting_receipt"] == 0 and receipts["resends"] == 0


def test_no_receipt_in_time_sends_again_in_order(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    boxes: list[Box],
) -> None:
    """A platform that announces receipts but sends none: the box keeps and resends, in order."""
    announce = platform_status("online", receipts=True, since="2026-11-26T08:00:00Z")
    box = Box(tmp_path, mosquitto.url, receipt_timeout_s=1)
    boxes.append(box)
    with Subscriber(mosquitto.port, ["eagleeye/v1/+/+/events/#"]) as sub:
        sub.client.publish(TOPICS.platform_status, announce, qos=1, retain=True).wait_for_publish(5)
        box.publisher.start()
        _box_sees_the_platform(box)
        sent = [box.emit(seq) for seq in range(5)]
        sub.wait_for(lambda m: len(m) >= 10, 10)  # every event twice: no receipt came
        assert box.outbox.depth() == 5 + 2 and box.receipts()["resends"] >= 5
        copies = [(e["event_id"], e["phase"], e["ts"]) for e in sub.events()]
        assert copies[:5] == sent and copies[5:10] == sent  # the second pass in order too
        # A platform that says it is offline gets no more copies: the broker queues for it.
        offline = platform_status("offline", receipts=True, since="2026-11-26T08:00:00Z")
        sub.client.publish(TOPICS.platform_status, offline, qos=1, retain=True).wait_for_publish(5)
        _wait(lambda: box.receipts()["platform"] == "offline", 5, "the platform's offline status")
        before = len(sub.events())
        time.sleep(5.0)  # past the doubled wait (1 s, then 2 s, then 4 s)
        assert len(sub.events()) == before
        # Back online (a new connection): everything waiting goes at once, then the receipts settle it.
        again = platform_status("online", receipts=True, since="2026-11-26T09:00:00Z")
        sub.client.publish(TOPICS.platform_status, again, qos=1, retain=True).wait_for_publish(5)
        sub.wait_for(lambda m: len([x for x in m if "/events/" in x.topic]) >= before + 5, 5)
        for key in sent:
            receipt = next(receipt_payloads([Receipt(*key)]))
            sub.client.publish(TOPICS.receipts, receipt, qos=1).wait_for_publish(5)
        assert box.publisher.wait_drained(10) == 0
        sub.client.publish(TOPICS.platform_status, b"", qos=1, retain=True).wait_for_publish(5)


def test_items_waiting_for_receipts_count_against_the_cap_info_first(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    boxes: list[Box],
) -> None:
    """`required` and a platform that never answers: the outbox stays under max_mb, info goes first."""
    box = Box(tmp_path, mosquitto.url, max_mb=0.05, receipts="required", receipt_timeout_s=1)
    boxes.append(box)
    box.publisher.start()
    _wait(lambda: box.publisher.connected, 10, "the connection")
    severities = ["info", "info", "alert"]
    for seq in range(150):
        event = make_event(seq, severity=severities[seq % 3])
        box.sink.emit(event, None)
    counters = box.outbox.counters()
    assert box.outbox.size_bytes() <= 0.05 * 1024 * 1024
    dropped = counters["dropped_by_severity"]
    assert isinstance(dropped, dict) and dropped["info"] > 0 and dropped["alert"] == 0
    # After a resend pass the dropped ones no longer count as waiting: what waits is what is kept.
    _wait(lambda: box.receipts()["resends"] > 0, 10, "a resend pass")
    _wait(lambda: box.receipts()["awaiting_receipt"] == box.outbox.depth(), 10, "waiting == kept")
    kept = [json.loads(item.payload)["severity"] for item in box.outbox.peek(1000)]
    assert kept.count("alert") == 50


# --- a flapping broker --------------------------------------------------------------------


def test_flapping_broker_the_box_is_back_within_5_s_of_each_return(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Down 3 s after each connection that carried a PUBACK: the backoff starts over each time."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", 8)
    cfg = MqttConfig(url=mosquitto.url, keepalive_s=5, stats_interval_s=60)
    pub = MqttPublisher(cfg, outbox, TOPICS, backoff=Backoff(1.0, 60.0))  # the agent's backoff
    pub.start()
    back_after: list[float] = []
    try:
        _wait(lambda: pub.connected, 10, "the first connection")
        for _ in range(3):
            # the connection has carried a PUBACK (the online status) when the broker goes
            _wait(lambda: pub._proven, 10, "a PUBACK on this connection")
            mosquitto.kill()
            time.sleep(3.0)
            mosquitto.start()
            returned = time.monotonic()
            _wait(lambda: pub.connected, 20, "the box to connect again")
            back_after.append(time.monotonic() - returned)
    finally:
        pub.stop(5)
        outbox.close()
    assert max(back_after) <= 5.0, back_after
