"""A left object's clip and owner crop from the box to the platform: `replay --publish` of the
staged dumping clip through the outbox, a real Mosquitto, into the town console and
`edge-agent listen --clips`; the clip plays on the alert page in Chromium; clip chunks
never go ahead of an alert and are the first to go when the outbox is full.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from edge_agent.console import evidence, retention
from edge_agent.console.db import Database
from edge_agent.console.migrations import migrate
from edge_agent.console.records import parse_message
from edge_agent.console.store import write_batch
from edge_agent.contract.clips import CHUNK_BYTES, split_clip
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import LANE_CLIPS, Outbox, OutboxMessage
from tests.broker import Mosquitto, Subscriber
from tests.conftest import FIXTURES, REPO
from tests.console_server import ConsoleProcess
from tests.test_console_ui import CHROMIUM, CHROMIUM_ARGS, PHONE, WIDE
from tests.test_contract import _listen

SCENARIOS = FIXTURES / "scenarios"
PREFIX = "eagleeye/v1/village/edge-fixture"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """(status, headers (any case), body) of a GET."""
    req = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


@dataclass
class Delivered:
    console: ConsoleProcess
    starts: list[dict[str, Any]]  # the start events replay wrote, each with `clip` and `owner`
    received: Path  # what `edge-agent listen` saved
    listen_out: str


def wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s} s")


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory, model_ready: Path) -> Iterator[Delivered]:
    tmp = tmp_path_factory.mktemp("clips")
    broker = Mosquitto(tmp / "broker").start()
    console = ConsoleProcess(tmp / "console", broker.url, f"sqlite:///{tmp}/console.sqlite3").start()
    received = tmp / "received"
    received.mkdir()
    listen = _listen("--url", broker.url, "--snapshots", str(received), "--clips", str(received))
    try:
        cfg = yaml.safe_load((SCENARIOS / "dumping.yaml").read_text())
        cfg["mqtt"] = {"url": broker.url}
        cfg["outbox"] = {"path": str(tmp / "outbox.sqlite3")}
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump(cfg))
        events = tmp / "events.jsonl"
        cmd = [sys.executable, "-m", "edge_agent", "replay", str(SCENARIOS / "dumping-unknown.mp4"),
               "--config", str(config), "--publish", "--events", str(events),
               "--evidence", str(tmp / "evidence"), "--quiet"]  # fmt: skip
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        starts = [e for e in map(json.loads, events.read_text().splitlines()) if e["phase"] == "start"]
        assert starts and all("clip" in e and "owner" in e for e in starts)
        for e in starts:
            path = f"/api/incidents/{e['event_id']}"
            wait(lambda path=path: (console.api(path).get("clip_info") or {}).get("complete"),
                 30, f"the console did not store the clip of {e['event_id']}")  # fmt: skip
            wait(lambda e=e: (received / f"{e['event_id']}.mp4").exists(), 15, "listen did not save the clip")
        listen.terminate()
        out, _ = listen.communicate(timeout=10)
        yield Delivered(console, starts, received, out)
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.communicate(timeout=10)
        console.stop()
        broker.kill()


def test_the_clip_and_owner_crop_reach_the_console_and_listen_with_the_events_sha256(
    delivered: Delivered,
) -> None:
    console = delivered.console
    for e in delivered.starts:
        eid, clip, owner = e["event_id"], e["clip"], e["owner"]
        status, headers, mp4 = get(f"{console.url}api/incidents/{eid}/clip.mp4")
        assert status == 200 and headers["Content-Type"] == "video/mp4"
        saved = (delivered.received / f"{eid}.mp4").read_bytes()
        assert sha(mp4) == sha(saved) == clip["sha256"] and len(mp4) == clip["bytes"]
        info = console.api(f"/api/incidents/{eid}")
        assert info["clip_info"]["complete"] and info["clip_info"]["sha256_ok"]
        assert info["clip_info"]["chunks_received"] == clip["chunks"] == -(-clip["bytes"] // CHUNK_BYTES)
        assert info["clip_info"]["duration_s"] == clip["duration_s"]

        status, headers, jpeg = get(f"{console.url}api/incidents/{eid}/owner.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
        assert sha(jpeg) == owner["crop"]["sha256"]
        assert sha((delivered.received / f"{eid}-owner.jpg").read_bytes()) == owner["crop"]["sha256"]
        assert info["owner_info"]["sha256_ok"] and info["owner_info"]["seen_at"] == owner["seen_at"]
        # the snapshot still is the snapshot (the owner crop has a topic of its own)
        assert sha((delivered.received / f"{eid}.jpg").read_bytes()) == e["snapshot"]["sha256"]
    assert "does not match" not in delivered.listen_out


def test_the_clip_is_served_in_byte_ranges(delivered: Delivered) -> None:
    eid, size = delivered.starts[0]["event_id"], delivered.starts[0]["clip"]["bytes"]
    url = f"{delivered.console.url}api/incidents/{eid}/clip.mp4"
    _, _, whole = get(url)
    status, headers, part = get(url, {"Range": "bytes=100-299"})
    assert status == 206 and part == whole[100:300]
    assert headers["Content-Range"] == f"bytes 100-299/{size}" and headers["Accept-Ranges"] == "bytes"
    status, headers, tail = get(url, {"Range": "bytes=-50"})
    assert status == 206 and tail == whole[-50:]
    status, _, rest = get(url, {"Range": f"bytes={size - 10}-"})
    assert status == 206 and rest == whole[-10:]
    status, headers, _ = get(url, {"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    assert get(f"{delivered.console.url}api/incidents/nope/clip.mp4")[0] == 404


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1280px", "390px"])
def test_the_alert_page_plays_the_clip_beside_the_owner_crop(
    delivered: Delivered, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import sync_playwright

    e = delivered.starts[0]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport=viewport).new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{delivered.console.url}incident/{e['event_id']}")
            page.wait_for_selector('main[data-ready="1"]')
            page.wait_for_function("document.getElementById('clip').readyState >= 2")
            duration = page.evaluate("document.getElementById('clip').duration")
            assert abs(duration - e["clip"]["duration_s"]) < 1.0, (duration, e["clip"])
            assert page.evaluate("document.getElementById('clip').videoWidth") == 640
            page.wait_for_function("document.getElementById('owner').naturalWidth > 0")
            assert page.locator("#clip").is_visible() and page.locator("#owner").is_visible()
            note = page.inner_text("#owner-note")
            assert note.startswith("brought it: person") and "2026-01-01" in note
            assert "sha256 checked" in page.inner_text("#clip-note")
            assert int(page.evaluate("document.scrollingElement.scrollWidth")) <= viewport["width"]
            # seeking needs the byte ranges: jump near the end and play from there
            page.evaluate("(t) => { document.getElementById('clip').currentTime = t; }", duration - 1.0)
            page.wait_for_function(
                "(t) => { const v = document.getElementById('clip');"
                " return !v.seeking && v.currentTime >= t && v.readyState >= 2; }",
                arg=duration - 1.5,
            )
        finally:
            browser.close()


def test_an_alert_queued_after_a_clips_chunks_is_published_before_them(tmp_path: Path) -> None:
    topics = Topics("eagleeye", "village", "edge-fixture")
    outbox = Outbox(tmp_path / "outbox.sqlite3", 64)
    chunks = list(split_clip(bytes(range(256)) * 4096))  # 1 MiB: 4 chunks
    outbox.put_many([OutboxMessage(topics.clip("edge-fixture-old", i), c, "street", "alert", lane=LANE_CLIPS)
                     for i, c in enumerate(chunks)])  # fmt: skip
    alert = json.dumps({"event_id": "edge-fixture-new", "phase": "start"}).encode()
    outbox.put(topics.event("street", "dumping"), alert, camera="street", severity="alert")
    with Mosquitto(tmp_path / "broker") as broker, Subscriber(broker.port, ["eagleeye/#"]) as sub:
        broker.start()
        sub.start()
        publisher = MqttPublisher(MqttConfig(url=broker.url, stats_interval_s=3600), outbox, topics,
                                  backoff=Backoff(0.2, 1.0))  # fmt: skip
        publisher.start()
        try:
            assert publisher.wait_drained(20) == 0
            msgs = sub.wait_for(lambda m: sum("/clips/" in x.topic for x in m) == 4, 10)
        finally:
            publisher.stop(2)
            outbox.close()
    order = [m.topic.split("/", 4)[4] for m in msgs if "/events/" in m.topic or "/clips/" in m.topic]
    assert order == ["events/street/dumping"] + [f"clips/edge-fixture-old/{i}" for i in range(4)]


def test_clip_chunks_are_dropped_first_when_the_outbox_is_full_and_counted(tmp_path: Path) -> None:
    topics = Topics("eagleeye", "village", "edge-fixture")
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1.0)  # 1 MiB
    info = [OutboxMessage(topics.event("lane", "crossing"), b"x" * 1000, "lane", "info") for _ in range(50)]
    outbox.put_many(info)
    chunks = list(split_clip(b"\x01" * (3 * CHUNK_BYTES)))
    outbox.put_many([OutboxMessage(topics.clip("e1", i), c, "street", "alert", lane=LANE_CLIPS)
                     for i, c in enumerate(chunks)])  # fmt: skip
    # a 300 kB alert snapshot no longer fits: the oldest clip chunk goes, not an info event
    outbox.put(topics.snapshot("e2"), b"\xff" * 300_000, camera="street", severity="alert")
    stats = outbox.counters()
    assert stats["dropped_clip_chunks"] == 1 and stats["dropped_by_severity"] == {
        "info": 0,
        "warning": 0,
        "alert": 0,
    }
    left = outbox.peek(1000)
    assert sum(i.topic.endswith(("/1", "/2")) and "/clips/" in i.topic for i in left) == 2
    assert sum("/events/" in i.topic for i in left) == 50
    outbox.close()


def test_the_console_puts_chunks_together_in_any_order_and_refuses_a_wrong_sha256(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/c.sqlite3")
    migrate(db)
    data = bytes(range(256)) * 3000  # 768000 bytes: 3 chunks
    parts = list(split_clip(data))
    event = json.loads((SCENARIOS / "dumping-unknown.events.jsonl").read_text().splitlines()[0])
    eid = event["event_id"]
    event["clip"] = {**event.get("clip", {}), "sha256": sha(data), "bytes": len(data), "chunks": 3,
                     "content_type": "video/mp4", "start_media_s": 0.0, "end_media_s": 29.0,
                     "started_at": event["started_at"], "duration_s": 29.0}  # fmt: skip
    event.pop("owner", None)
    event["snapshot"]["sha256"] = "0" * 64  # the golden files leave out what FFmpeg and JPEG decide

    def batch(*msgs: tuple[str, bytes]) -> Any:
        records = [parse_message("eagleeye", t, p) for t, p in msgs]
        with db.transaction() as conn:
            return write_batch(conn, records, time.time())

    chunk = [(f"{PREFIX}/clips/{eid}/{i}", p) for i, p in enumerate(parts)]
    assert batch(chunk[2], chunk[0]).clips_stored == []  # before the event: they wait
    assert batch((f"{PREFIX}/events/street/dumping", json.dumps(event).encode()), chunk[0]).clips_stored == []
    assert batch(chunk[1]).clips_stored == [("village", "edge-fixture", eid)]
    assert batch(chunk[1]).clips_stored == [("village", "edge-fixture", eid)]  # a re-send: said again
    with db.connection() as conn:
        assert evidence.clip_mp4(conn, eid) == data
        assert conn.execute(sa.text("SELECT COUNT(*) FROM clip_chunks")).scalar() == 0

    other = {**event, "event_id": eid + "x", "clip": {**event["clip"], "sha256": "0" * 64}}
    batch((f"{PREFIX}/events/street/dumping", json.dumps(other).encode()),
          *[(f"{PREFIX}/clips/{eid}x/{i}", p) for i, p in enumerate(parts)])  # fmt: skip
    with db.connection() as conn:
        assert evidence.clip_mp4(conn, eid + "x") is None
        info = evidence.infos(conn, eid + "x", [])["clip_info"]
    assert info["complete"] is False and info["sha256_ok"] is False and info["chunks_received"] == 3

    # retention (`clips` days): an open incident keeps its clip; a closed one's MP4 goes, and
    # so do the chunks of a clip never completed
    later = time.time() + 2 * 86400
    with db.transaction() as conn:
        retention.purge(conn, {"clips": 1}, later)
        assert evidence.clip_mp4(conn, eid) == data
        conn.execute(sa.text("UPDATE incidents SET state = 'resolved'"))
        assert retention.purge(conn, {"clips": 1}, later) == {"clips": 2}
        assert evidence.clip_mp4(conn, eid) is None
        assert evidence.infos(conn, eid, [])["clip_info"]["purged"] is True
        assert conn.execute(sa.text("SELECT COUNT(*) FROM clip_chunks")).scalar() == 0
    db.close()


def test_an_outbox_from_before_the_clip_lane_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "outbox.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
        " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, camera TEXT,"
        " severity TEXT NOT NULL,"
        " created_at REAL NOT NULL, size INTEGER NOT NULL);"
        "CREATE INDEX items_severity ON items (severity, id);"
        "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,"
        " qos INTEGER NOT NULL, retain INTEGER NOT NULL, camera TEXT, severity TEXT NOT NULL,"
        " created_at REAL NOT NULL, size INTEGER NOT NULL, reason TEXT NOT NULL, tries INTEGER NOT NULL,"
        " dead_at REAL NOT NULL);"
        "INSERT INTO items (topic, payload, qos, retain, camera, severity, created_at, size)"
        " VALUES ('eagleeye/v1/s/d/events/c/r', x'7b7d', 1, 0, 'c', 'alert', 1.0, 30);"
        "PRAGMA user_version=2;"
    )
    conn.close()
    outbox = Outbox(path, 16)
    [old] = outbox.peek(10)
    assert old.topic == "eagleeye/v1/s/d/events/c/r" and old.lane == 0 and outbox.depth() == 1
    outbox.put("eagleeye/v1/s/d/clips/e/0", b"x", lane=LANE_CLIPS)
    assert [i.lane for i in outbox.peek(10, lane=LANE_CLIPS)] == [LANE_CLIPS]
    assert outbox.dead_letter(old.id, "test", 1) and outbox.dead_letters()[0].topic == old.topic
    outbox.close()
