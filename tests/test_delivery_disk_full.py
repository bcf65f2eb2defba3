"""A full disk under the outbox and the evidence store, on a real small tmpfs, with a real Mosquitto.

The box must never stop for ENOSPC: evidence gives way first, events the disk
refuses wait in memory, acks the disk refuses are not turned into re-sends, and
once space returns everything stored is delivered, without a storm of duplicates
and without partial files left behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from edge_agent.pipeline.evidence import EvidenceStore
from tests.broker import (
    Mosquitto,
    Subscriber,
    assert_order_per_camera,
    dedup,
    fake_jpeg,
    make_event,
    mosquitto,  # noqa: F401  (fixture)
)

TOPICS = Topics("eagleeye", "laohu", "edge-01")
EVENTS = "eagleeye/v1/+/+/events/#"


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` (root only); skips the test where mounting is impossible."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; run the suite as root to test a full disk")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); a full disk is not tested")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of the file system under `directory`: another program filling the disk."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (65536, 512):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _publisher(url: str, outbox: Outbox, sink: OutboxSink) -> MqttPublisher:
    cfg = MqttConfig(url=url, keepalive_s=5, stats_interval_s=60)
    return MqttPublisher(cfg, outbox, TOPICS, backoff=Backoff(0.2, 0.5), outbox_extra=sink.counters)


def _drain(pub: MqttPublisher, sink: OutboxSink, timeout_s: float) -> None:
    """Wait for the outbox and the memory queue to empty, retrying the held items as the agent does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = sink.retry()
        if held == 0 and pub.wait_drained(0.2) == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"not drained: {sink.counters()} {pub.counters()}")


def test_full_disk_with_the_broker_down_then_up_loses_nothing_stored(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
) -> None:
    mosquitto.stop()
    with small_disk(tmp_path / "disk", "3m") as disk:
        # The reserves scaled to a 3 MB disk: the evidence gives way at 1 MB free, the outbox at 256 KB.
        outbox = Outbox(disk / "outbox" / "outbox.sqlite3", 64, reserve_mb=0.25)
        evidence = EvidenceStore(disk / "evidence", max_mb=64, reserve_mb=1)
        sink = OutboxSink(outbox, TOPICS)
        total = 220  # ~20 KB snapshots: twice what the disk can hold with the evidence
        for seq in range(total):
            snap = fake_jpeg(seq, 20_000)
            event = make_event(seq, camera=("cam-a", "cam-b")[seq % 2], snapshot=snap)
            evidence.save(event.event_id, snap)  # what the pipeline does, then the sink
            sink.emit(event, snap)  # must not raise, whatever the disk says
        held = sink.counters()
        assert held["write_errors"] > 0 and held["held_in_memory"] > 0, "the disk never filled"
        assert held["last_write_error"] is not None and held["lost_unstored"] == 0
        ev = evidence.counters()
        assert ev["refused_low_space"] + ev["pruned"] > 0  # evidence gave way first
        assert not list(disk.rglob("*.tmp")), "a partial file was left behind"

        mosquitto.start()
        with Subscriber(mosquitto.port, [EVENTS]) as sub:
            pub = _publisher(mosquitto.url, outbox, sink)
            pub.start()
            try:
                _drain(pub, sink, 60)
                events = sub.wait_events(total, 20)
                stats = pub.stats_payload()
            finally:
                pub.stop(5)
        unique = dedup(events)
        assert sorted(e["details"]["seq"] for e in unique) == list(range(total))
        assert_order_per_camera(unique)
        assert len(events) - len(unique) <= 32, "a storm of duplicates"
        assert stats["outbox"]["held_in_memory"] == 0 and stats["outbox"]["last_write_error"] is None
        assert validate("stats", stats) == []
        # The drain gave the space back: the WAL is truncated, the free pages released.
        wal = Path(f"{outbox.path}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        assert outbox.path.stat().st_size < 128 * 1024
        outbox.close()
        assert not list(disk.rglob("*.tmp"))


def test_acks_the_full_disk_refuses_are_not_turned_into_re_sends(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
) -> None:
    mosquitto.stop()
    with small_disk(tmp_path / "disk", "4m") as disk:
        outbox = Outbox(disk / "outbox.sqlite3", 64, reserve_mb=0.25)
        sink = OutboxSink(outbox, TOPICS)
        total = 120
        for seq in range(total):
            sink.emit(make_event(seq, camera=("cam-a", "cam-b")[seq % 2]), None)
        assert outbox.depth() == total
        # The WAL given back (as after a drain), then another program takes the rest of the disk:
        # removing a delivered item needs a page of WAL that cannot be had.
        with contextlib.closing(sqlite3.connect(outbox.path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(disk)
        mosquitto.start()
        with Subscriber(mosquitto.port, [EVENTS], client_id="platform-disk-full") as sub:
            pub = _publisher(mosquitto.url, outbox, sink)
            pub.start()
            try:
                sub.wait_events(total, 20)
                deadline = time.monotonic() + 10
                while pub.counters()["acks_unwritten"] < total and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert pub.counters()["ack_errors"] > 0, "the acks found room: the disk is not full"
                assert outbox.depth() == total  # nothing could be removed
                assert pub.counters()["acks_unwritten"] == total
                # A reconnect while the acks wait: what the broker took is not sent again.
                mosquitto.restart()
                deadline = time.monotonic() + 20
                while pub.counters()["reconnects"] < 1 and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(1.0)
                filler.unlink()  # space returns
                assert pub.wait_drained(20) == 0
                events = sub.wait_events(total, 10)
                published = pub.counters()["published"]
            finally:
                pub.stop(5)
        outbox.close()
    unique = dedup(events)
    assert sorted(e["details"]["seq"] for e in unique) == list(range(total))
    assert published == total, f"{published - total} re-sent after a failed ack"
    # The broker may itself deliver again what it had in flight to the subscriber when it restarted:
    # at most its in-flight window towards that client (Mosquitto's max_inflight_messages, 20).
    # The box's own share is asserted above: it published each item once.
    assert len(events) - total <= 20


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        outbox = Outbox(tmp_path / "state" / "outbox.sqlite3", 1)
        outbox.put("a/b", b"1")
        store = EvidenceStore(tmp_path / "state" / "evidence")
        picture = store.save("edge-01-cam-a-000001", b"\xff\xd8jpeg\xff\xd9")
    finally:
        os.umask(old)
    assert picture is not None
    for path in (outbox.path, Path(f"{outbox.path}-wal"), Path(f"{outbox.path}-shm"), picture):
        assert path.stat().st_mode & 0o777 == 0o600, path
    for directory in (tmp_path / "state", tmp_path / "state" / "evidence"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    outbox.close()


def test_evidence_quota_prunes_the_oldest_first(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "ev", max_mb=50_000 / 1024 / 1024, reserve_mb=0)
    for i in range(10):
        assert store.save(f"e{i:02d}", b"x" * 10_000) is not None
        time.sleep(0.01)
    names = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert names == [f"e{i:02d}.jpg" for i in range(5, 10)]
    assert store.counters()["pruned"] == 5
    (tmp_path / "ev" / "e99.jpg.tmp").write_bytes(b"partial")  # a crash mid-write
    again = EvidenceStore(tmp_path / "ev", max_mb=50_000 / 1024 / 1024, reserve_mb=0)
    assert not (tmp_path / "ev" / "e99.jpg.tmp").exists()
    assert again.counters()["bytes"] == 50_000
    assert shutil.disk_usage(tmp_path).free > 0


def test_clips_past_keep_mb_go_oldest_first_counted_and_the_pictures_stay(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "ev", max_mb=10, reserve_mb=0, keep_mb=250_000 / 1024 / 1024)
    for i in range(5):
        assert store.save(f"e{i}", b"j" * 1000) is not None
        assert store.save(f"e{i}", b"v" * 100_000, ext=".mp4") is not None
        time.sleep(0.01)
    names = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert names == sorted([f"e{i}.jpg" for i in range(5)] + ["e3.mp4", "e4.mp4"])  # two clips fit in 250 kB
    stats = store.counters()
    assert (stats["clips_evicted"], stats["clip_bytes_evicted"], stats["clip_bytes"]) == (3, 300_000, 200_000)
    assert stats["pruned"] == 0  # the quota of everything was never reached


def test_the_memory_queue_is_bounded_drops_the_oldest_and_keeps_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import edge_agent.delivery.outbox_sink as outbox_sink

    monkeypatch.setattr(outbox_sink, "HOLD_MAX_ITEMS", 10)
    outbox = Outbox(tmp_path / "outbox.sqlite3", 16, reserve_mb=1e9)  # a disk that never has room
    sink = OutboxSink(outbox, TOPICS)
    for seq in range(15):
        sink.emit(make_event(seq), None)  # never raises
    counters = sink.counters()
    assert counters["held_in_memory"] == 10 and counters["lost_unstored"] == 5
    assert outbox.depth() == 0
    outbox.reserve_bytes = 0  # space returns
    assert sink.retry() in (0, 10)  # at most once a second
    deadline = time.monotonic() + 3
    while sink.retry() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sink.counters()["held_in_memory"] == 0 and sink.counters()["last_write_error"] is None
    stored = [json.loads(it.payload)["details"]["seq"] for it in outbox.peek(100)]
    assert stored == list(range(5, 15))  # the newest kept, in order
    errors = [r for r in caplog.records if "wait in memory" in r.getMessage()]
    assert len(errors) == 1  # said once when it started, not per event
    outbox.close()


def test_a_backlog_on_a_disk_already_full_at_start_is_delivered(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with small_disk(tmp_path / "disk", "3m") as disk:
        path = disk / "outbox.sqlite3"
        with Outbox(path, 64, reserve_mb=0.25) as outbox:
            sink = OutboxSink(outbox, TOPICS)
            for seq in range(100):
                sink.emit(make_event(seq, camera=("cam-a", "cam-b")[seq % 2]), None)
        filler = fill(disk)  # the box restarts on a disk another program has filled
        outbox = Outbox(path, 64, reserve_mb=0.25)  # opens: the backlog is not locked in
        assert outbox.opened_exclusive and outbox.depth() == 100
        assert any("exclusive mode" in r.getMessage() for r in caplog.records)
        sink = OutboxSink(outbox, TOPICS)
        sink.emit(make_event(100), None)  # waits in memory
        with Subscriber(mosquitto.port, [EVENTS]) as sub:
            pub = _publisher(mosquitto.url, outbox, sink)
            pub.start()
            try:
                sub.wait_events(100, 20)
                filler.unlink()
                _drain(pub, sink, 20)
                events = sub.wait_events(101, 10)
            finally:
                pub.stop(5)
        outbox.close()
    assert sorted(e["details"]["seq"] for e in dedup(events)) == list(range(101))
    assert len(events) == 101
