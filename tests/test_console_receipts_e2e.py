"""Nothing lost even when the broker dies: boxes, a real Mosquitto and `edge-agent console`.

The console sends receipts after its commit; a box keeps every event after the broker's
PUBACK until that receipt, and sends it again when none comes. So a broker killed with
the console's backlog in memory (or one whose persistence file is lost) costs nothing:
(a) and (b) below, and the same for clip chunks, which wait for the clip receipt the
console announces (`clip_receipts: true`). (c): the console SIGKILLed during a burst
from five boxes, on SQLite and PostgreSQL, stores every event exactly once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.contract.clips import chunk_count
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.core.types import ClipRef, EvidenceBytes
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import Mosquitto, fake_jpeg, make_event, mosquitto  # noqa: F401
from tests.conftest import REPO
from tests.console_server import ConsoleProcess, event_rows
from tests.postgres import postgres_server, postgres_url  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path}/console.sqlite3"


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class Box:
    """One box's durable outbox and publisher (receipts: auto, the default)."""

    def __init__(self, tmp: Path, url: str, device: str) -> None:
        self.device = device
        self.topics = Topics("eagleeye", "laohu", device)
        self.outbox = Outbox(tmp / f"{device}.sqlite3", 64)
        cfg = MqttConfig(url=url, keepalive_s=5, stats_interval_s=3600, receipt_timeout_s=3)
        self.publisher = MqttPublisher(cfg, self.outbox, self.topics, backoff=Backoff(0.2, 1.0))
        self.sink = OutboxSink(self.outbox, self.topics)
        self.sent: list[tuple[str, str, str]] = []

    def emit(self, seq: int) -> None:
        snap = fake_jpeg(seq) if seq % 3 == 0 else None
        ev = make_event(seq, device=self.device, camera=f"cam-{seq % 2}", snapshot=snap)
        self.sink.emit(ev, snap)
        self.sent.append((ev.event_id, ev.phase, ev.ts))

    def emit_with_clip(self, seq: int, clip: bytes) -> None:
        ev = make_event(seq, device=self.device, severity="alert")
        ref = ClipRef(
            hashlib.sha256(clip).hexdigest(), len(clip), chunk_count(len(clip)), 0.0, 9.0, ev.ts, 9.0
        )
        ev = dataclasses.replace(ev, clip=ref, evidence=EvidenceBytes(clip=clip))
        self.sink.emit(ev, None)
        self.sent.append((ev.event_id, ev.phase, ev.ts))

    def waits_for_receipts(self) -> bool:
        return bool(self.publisher.counters()["receipts"]["waiting"])

    def close(self) -> None:
        self.publisher.stop(2)
        self.outbox.close()


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[list[Box]]:
    made: list[Box] = []
    yield made
    for box in made:
        box.close()


@pytest.mark.parametrize("how", ["killed before any save", "persistence file deleted"])
def test_the_broker_loses_the_consoles_backlog_and_nothing_is_lost(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    boxes: list[Box],
    how: str,
) -> None:
    database_url = f"sqlite:///{tmp_path}/console.sqlite3"
    console = ConsoleProcess(tmp_path / "console", mosquitto.url, database_url).start()
    box = Box(tmp_path, mosquitto.url, "edge-01")
    boxes.append(box)
    box.publisher.start()
    box.emit(100)  # the console has stored something before: its session is expected next time
    _wait(lambda: box.waits_for_receipts() and box.outbox.depth() == 0, 15, "a first receipt")
    console.stop()  # away for an upgrade: the broker queues for its persistent session
    for seq in range(18):
        box.emit(seq)
    _wait(lambda: box.publisher.counters()["receipts"]["awaiting_receipt"] >= 18, 10, "every PUBACK")
    assert box.outbox.depth() >= 18  # the broker acknowledged them; the box still keeps them
    if how == "killed before any save":
        mosquitto.kill()
    else:
        mosquitto.stop()  # a clean stop saves the queue ...
        (mosquitto.workdir / "mosquitto.db").unlink()  # ... and the file is lost
    mosquitto.start()  # empty: no session, no queue
    console.start()
    _wait(lambda: box.outbox.depth() == 0, 40, "the box's outbox to empty on the console's receipts")
    rows = event_rows(database_url)
    assert sorted(rows) == sorted(box.sent) and len(rows) == len(box.sent)  # each once
    status = console.api("/api/status")
    assert status["mqtt"]["sessions_lost"] == 1, status["mqtt"]
    assert "has no session for console-test" in console.log()
    console.stop()


def test_clip_chunks_lost_with_the_broker_are_sent_again_until_the_clip_receipt(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    boxes: list[Box],
) -> None:
    database_url = f"sqlite:///{tmp_path}/console.sqlite3"
    console = ConsoleProcess(tmp_path / "console", mosquitto.url, database_url).start()
    box = Box(tmp_path, mosquitto.url, "edge-01")
    boxes.append(box)
    box.publisher.start()
    box.emit(100)
    _wait(lambda: box.publisher.counters()["receipts"]["clips_waiting"] and box.outbox.depth() == 0, 15,
          "the platform's announcement of clip receipts")  # fmt: skip
    console.stop()
    clips = {seq: (REPO / "fixtures/scenarios" / name).read_bytes()
             for seq, name in [(1, "blown-away.mp4"), (2, "camera-shake.mp4")]}  # fmt: skip
    chunks = sum(chunk_count(len(c)) for c in clips.values())
    for seq, clip in clips.items():
        box.emit_with_clip(seq, clip)
    # every chunk acknowledged by the broker, and still kept: it waits for the clip receipt
    _wait(lambda: box.publisher.counters()["receipts"]["awaiting_receipt"] >= 2 + chunks, 20, "every PUBACK")
    assert box.outbox.depth() >= 2 + chunks
    mosquitto.kill()  # the console's queue, chunks and all, was in the broker's memory only
    mosquitto.start()
    console.start()
    _wait(lambda: box.outbox.depth() == 0, 60, "the box's outbox to empty on the console's receipts")
    console.stop()
    with sqlite3.connect(tmp_path / "console.sqlite3") as conn:
        stored = dict(conn.execute("SELECT event_id, data FROM clips WHERE complete = 1 AND sha256_ok = 1"))
    assert {e: hashlib.sha256(d).hexdigest() for e, d in stored.items()} == {
        f"edge-01-cam-a-{seq:06d}": hashlib.sha256(c).hexdigest() for seq, c in clips.items()
    }


def test_the_console_killed_during_a_burst_from_five_boxes_stores_each_event_once(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    boxes: list[Box],
    database_url: str,
) -> None:
    console = ConsoleProcess(tmp_path / "console", mosquitto.url, database_url).start()
    try:
        boxes.extend(Box(tmp_path, mosquitto.url, f"edge-0{n + 1}") for n in range(5))
        for box in boxes:
            box.publisher.start()
        _wait(lambda: all(b.waits_for_receipts() for b in boxes), 15, "the boxes to see receipts announced")

        def burst(box: Box) -> None:
            for seq in range(40):
                box.emit(seq)
                time.sleep(0.02)

        threads = [threading.Thread(target=burst, args=(box,)) for box in boxes]
        for t in threads:
            t.start()
        _wait(lambda: len(event_rows(database_url)) >= 40, 30, "part of the burst stored")
        console.kill()  # SIGKILL in the middle of the burst
        killed_with = len(event_rows(database_url))  # nothing commits after the kill
        for t in threads:
            t.join()
        time.sleep(1.0)
        console.start()
        _wait(lambda: all(box.outbox.depth() == 0 for box in boxes), 90, "every box's outbox to empty")
        rows = event_rows(database_url)
        counts = Counter(rows)
        sent = [key for box in boxes for key in box.sent]
        assert len(sent) == 200 and set(counts) == set(sent)
        assert 0 < killed_with < len(sent), f"the kill should have happened mid-burst ({killed_with} stored)"
        assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    finally:
        console.stop()
