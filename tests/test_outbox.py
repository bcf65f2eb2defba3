"""The durable outbox: order, acks, persistence, the cap policy, damaged files, threads."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from edge_agent.contract.topics import Topics
from edge_agent.core.types import Event
from edge_agent.delivery.outbox import Outbox, OutboxError, OutboxMessage
from edge_agent.delivery.outbox_sink import OutboxSink

KB = 1024


def _open(tmp_path: Path, max_mb: float = 16.0) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite3", max_mb)


def _event(seq: int, severity: str = "warning", camera: str = "cam-a") -> Event:
    return Event(
        event_id=f"edge-01-{seq:04d}",
        phase="start",
        site="laohu",
        device="edge-01",
        camera=camera,
        rule="dumping",
        kind="left_object",
        severity=severity,
        zone="dump-corner",
        label=None,
        score=None,
        objects=(),
        started_at="2026-11-26T08:15:02.400Z",
        ts="2026-11-26T08:15:32.400Z",
        media_s=32.4,
        duration_s=30.0,
    )


def test_put_peek_ack_in_id_order(tmp_path: Path) -> None:
    with _open(tmp_path) as ob:
        ids = [ob.put(f"t/{i}", bytes([i]) * 10, camera="cam-a") for i in range(5)]
        assert ids == sorted(ids)
        items = ob.peek(3)
        assert [i.id for i in items] == ids[:3]
        assert [i.topic for i in items] == ["t/0", "t/1", "t/2"]
        assert items[0].payload == b"\0" * 10
        assert items[0].qos == 1 and items[0].retain is False and items[0].camera == "cam-a"
        assert items[0].size == len("t/0") + 10
        assert [i.id for i in ob.peek(10, after_id=ids[2])] == ids[3:]
        assert ob.ack(ids[1]) is True
        assert ob.ack(ids[1]) is False  # acked twice: no error, nothing removed
        assert [i.id for i in ob.peek(10)] == [ids[0], ids[2], ids[3], ids[4]]
        assert ob.depth() == 4
        assert ob.ack_many(ids) == 4
        assert ob.depth() == 0 and ob.size_bytes() == 0
        assert ob.counters()["oldest_age_s"] is None


def test_items_survive_reopen(tmp_path: Path) -> None:
    with _open(tmp_path) as ob:
        first = ob.put("a", b"1", severity="alert", qos=1, retain=True, camera=None)
        ob.put("b", b"2")
        ob.ack(first)
    with _open(tmp_path) as ob:
        items = ob.peek(10)
        assert [(i.topic, i.payload) for i in items] == [("b", b"2")]
        assert ob.depth() == 1 and ob.size_bytes() == 2
        later = ob.put("c", b"3")
        assert later > items[0].id  # ids never go back, even after deletes and a reopen


def test_put_many_is_one_transaction(tmp_path: Path) -> None:
    with _open(tmp_path) as ob:
        with pytest.raises(ValueError, match="severity"):
            ob.put_many([OutboxMessage("a", b"1"), OutboxMessage("b", b"2", severity="urgent")])
        assert ob.depth() == 0
        ids = ob.put_many([OutboxMessage("a", b"1"), OutboxMessage("b", b"2", qos=0)])
        assert [i.topic for i in ob.peek(10)] == ["a", "b"] and len(ids) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"severity": "fatal"}, "severity"), ({"qos": 3}, "qos")],
)
def test_put_rejects_bad_values(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with _open(tmp_path) as ob, pytest.raises(ValueError, match=match):
        ob.put("a", b"x", **kwargs)  # type: ignore[arg-type]


def test_cap_drops_oldest_info_first_then_oldest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge_agent.delivery.outbox")
    payload = b"x" * (KB - 1)  # with the 1-byte topic, exactly 1 KiB per item
    with Outbox(tmp_path / "o.sqlite3", max_mb=10 / 1024) as ob:  # 10 KiB: ten items
        sev = ["alert", "info", "warning", "info", "alert", "info", "warning", "alert", "info", "info"]
        ids = [ob.put("t", payload, severity=s) for s in sev]
        assert ob.dropped_total == 0
        new = ob.put("t", payload, severity="alert")
        assert ob.dropped_by_severity == {"info": 1, "warning": 0, "alert": 0}
        assert ids[1] not in [i.id for i in ob.peek(100)]  # the oldest info item went
        for _ in range(4):  # the four remaining info items go next, oldest first
            ob.put("t", payload, severity="alert")
        kept = [i.id for i in ob.peek(100)]
        assert [i for i, s in zip(ids, sev, strict=True) if s == "info" and i in kept] == []
        assert ob.dropped_by_severity == {"info": 5, "warning": 0, "alert": 0}
        newest_info = ob.put("t", payload, severity="info")  # the only info item is the new one
        assert newest_info not in [i.id for i in ob.peek(100)]
        assert ob.dropped_by_severity == {"info": 6, "warning": 0, "alert": 0}
        ob.put("t", payload, severity="warning")  # no info left: the oldest of all goes
        kept = [i.id for i in ob.peek(100)]
        assert ids[0] not in kept and new in kept
        assert ob.dropped_total == 7 and ob.dropped_by_severity == {"info": 6, "warning": 0, "alert": 1}
        assert ob.size_bytes() <= ob.max_bytes and ob.depth() == 10
        counters = ob.counters()
        assert counters["dropped_total"] == 7 and counters["bytes"] == 10 * KB
    warnings = [r for r in caplog.records if "over its cap" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited: one line a minute, not one per drop


def test_corrupt_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "outbox.sqlite3"
    junk = os.urandom(8192)
    path.write_bytes(junk)
    with Outbox(path, 1) as ob:
        assert ob.recovered_corrupt is True
        assert ob.counters()["recovered_corrupt"] is True
        assert ob.corrupt_moved_to is not None and ob.corrupt_moved_to.read_bytes() == junk
        assert ob.corrupt_moved_to.name.startswith("outbox.sqlite3.corrupt-")
        ob.put("a", b"1")
        assert ob.depth() == 1
    assert any("damaged" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    with Outbox(path, 1) as ob:  # the new file is healthy: no second recovery
        assert ob.recovered_corrupt is False and ob.depth() == 1


def _damage(path: Path, *spans: tuple[int, int]) -> None:
    """Fold the WAL into the file, then overwrite byte spans (offset, length) with noise."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    for offset, length in spans:
        data[offset : offset + length] = os.urandom(length)
    path.write_bytes(bytes(data))


def test_damaged_pages_are_detected_and_readable_rows_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite3"
    payloads = {}
    with Outbox(path, 4) as ob:
        for i in range(200):
            payloads[ob.put(f"t/{i}", os.urandom(1000))] = i
    size = path.stat().st_size
    _damage(path, (size // 2, 8192), (4096 + 16, 48))
    with Outbox(path, 4) as ob:
        assert ob.recovered_corrupt is True
        counters = ob.counters()
        saved, lost = counters["salvaged"], counters["salvage_lost"]
        assert saved == ob.depth() and saved >= 150
        assert lost is not None and saved + lost == 200
        items = ob.peek(500)
    assert [it.id for it in items] == sorted(it.id for it in items)  # order kept, ids kept
    assert all(it.topic == f"t/{payloads[it.id]}" for it in items)
    assert any(f"saved {saved} readable item(s)" in r.getMessage() for r in caplog.records)


def test_eighty_kilobytes_of_damage_in_a_large_outbox_keep_most_items(tmp_path: Path) -> None:
    """The field case: 80 KB of damage in the middle of a ~20 MB outbox of snapshots."""
    path = tmp_path / "outbox.sqlite3"
    sent: dict[int, bytes] = {}
    with Outbox(path, 64) as ob:
        for i in range(350):
            payload = os.urandom(60_000)
            sent[ob.put(f"eagleeye/v1/s/d/snapshots/{i}", payload, severity="alert")] = payload
    size = path.stat().st_size
    assert size > 20 * 1024 * 1024
    _damage(path, (size // 2, 80 * 1024))
    with Outbox(path, 64) as ob:
        assert ob.recovered_corrupt is True
        items = ob.peek(1000)
        counters = ob.counters()
    assert counters["salvaged"] == len(items) >= 330
    assert counters["salvage_lost"] == 350 - len(items)
    for it in items:  # what is kept is intact, not merely present
        assert it.payload == sent[it.id]
    assert ob.corrupt_moved_to is not None and ob.corrupt_moved_to.exists()


def test_closed_outbox_raises(tmp_path: Path) -> None:
    ob = _open(tmp_path)
    ob.close()
    ob.close()
    with pytest.raises(OutboxError, match="closed"):
        ob.put("a", b"1")


def test_unopenable_path_is_an_error_not_a_recovery(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises((OutboxError, OSError)):
        Outbox(blocker / "outbox.sqlite3", 1)
    assert blocker.read_text() == "not a directory"


def test_listeners_hear_puts(tmp_path: Path) -> None:
    heard: list[int] = []
    with _open(tmp_path) as ob:

        def listener() -> None:
            heard.append(ob.depth())

        ob.add_listener(listener)
        ob.put("a", b"1")
        ob.put_many([OutboxMessage("b", b"2"), OutboxMessage("c", b"3")])
        ob.remove_listener(listener)
        ob.put("d", b"4")
    assert heard == [1, 3]


def test_concurrent_puts_and_acks(tmp_path: Path) -> None:
    per_thread = 150
    with _open(tmp_path) as ob:
        errors: list[BaseException] = []

        def producer(cam: str) -> None:
            try:
                for i in range(per_thread):
                    ob.put(f"{cam}/{i}", str(i).encode(), camera=cam)
            except BaseException as err:
                errors.append(err)
                raise

        threads = [threading.Thread(target=producer, args=(f"cam-{k}",)) for k in range(3)]
        for t in threads:
            t.start()
        acked = 0
        seen_last: dict[str, int] = {}
        while acked < 3 * per_thread:
            items = ob.peek(50)
            for item in items:
                n = int(item.payload)
                assert n > seen_last.get(str(item.camera), -1)  # id order keeps each camera's order
                seen_last[str(item.camera)] = n
            acked += ob.ack_many(i.id for i in items)
        for t in threads:
            t.join()
        assert not errors
        assert ob.depth() == 0


def test_outbox_sink_puts_snapshot_then_event(tmp_path: Path) -> None:
    topics = Topics("eagleeye", "laohu", "edge-01")
    with _open(tmp_path) as ob:
        sink = OutboxSink(ob, topics)
        sink.emit(_event(1, severity="info", camera="bridge-east"), b"\xff\xd8jpeg\xff\xd9")
        sink.emit(_event(2, severity="alert"), None)
        sink.close()
        items = ob.peek(10)
    assert [i.topic for i in items] == [
        "eagleeye/v1/laohu/edge-01/snapshots/edge-01-0001",
        "eagleeye/v1/laohu/edge-01/events/bridge-east/dumping",
        "eagleeye/v1/laohu/edge-01/events/cam-a/dumping",
    ]
    assert [i.severity for i in items] == ["info", "info", "alert"]
    assert [i.camera for i in items] == ["bridge-east", "bridge-east", "cam-a"]
    assert all(i.qos == 1 and not i.retain for i in items)
    assert items[0].payload == b"\xff\xd8jpeg\xff\xd9"
    assert items[1].payload == _event(1, severity="info", camera="bridge-east").to_json().encode()
