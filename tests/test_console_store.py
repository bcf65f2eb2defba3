"""The console's schema and writes on both engines: migrations, dedup, incident lifecycle, statuses,
the workflow, size caps, retention and the count series.

Every test runs on SQLite and on a real PostgreSQL (Debian's server, started in a
temp dir by `tests/postgres.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from edge_agent.console import queries, retention, workflow
from edge_agent.console.config import parse_console_config
from edge_agent.console.db import Database
from edge_agent.console.migrations import head, migrate
from edge_agent.console.records import EventRecord, Limits, Refused, Rejected, parse_message
from edge_agent.console.store import BatchResult, write_batch
from edge_agent.console.workflow import WorkflowError
from tests.broker import fake_jpeg, make_event
from tests.postgres import postgres_server, postgres_url  # noqa: F401

BASE = "eagleeye/v1/laohu/edge-01"
NOW = 1_795_680_900.0  # 2026-11-26T08:15:00Z, as make_event's events
DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/console.sqlite3"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    migrate(database)
    yield database
    database.close()


def event_msg(seq: int, phase: str = "start", ts: str | None = None, **kw: object) -> tuple[str, bytes]:
    ev = make_event(seq, phase=phase, **kw).to_dict()  # type: ignore[arg-type]
    if ts is not None:
        ev["ts"] = ts
    return f"{BASE}/events/{ev['camera']}/{ev['rule']}", json.dumps(ev).encode()


def count_msg(start: str, count: int, complete: bool = True, camera: str = "bridge") -> tuple[str, bytes]:
    body = {
        "schema": "eagleeye.count/1",
        "site": "laohu",
        "device": "edge-01",
        "camera": camera,
        "rule": "people",
        "zone": "bridge",
        "line": None,
        "labels": ["person"],
        "interval_start": start,
        "interval_end": start,
        "interval_s": 600,
        "complete": complete,
        "count": count,
        "by_label": {"person": count},
        "directions": None,
        "dwell": None,
        "media_s": 0.0,
        "ts": start,
    }
    return f"{BASE}/counts/{camera}/people", json.dumps(body).encode()


def ingest(
    db: Database, *messages: tuple[str, bytes], at: float = NOW, limits: Limits | None = None
) -> BatchResult:
    records = [parse_message("eagleeye", t, p, limits) for t, p in messages]
    with db.transaction() as conn:
        return write_batch(conn, records, at)


def scalar(db: Database, sql: str) -> Any:
    with db.connection() as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_migrations_apply_once_and_leave_empty_tables(db: Database) -> None:
    assert migrate(db) == []  # already applied by the fixture: nothing to do
    assert scalar(db, "SELECT version_num FROM alembic_version") == head() == "0004"
    for table in (
        "events",
        "incidents",
        "snapshots",
        "device_status",
        "camera_status",
        "stats",
        "counts",
        "devices",
        "rejected",
        "incident_audit",
        "refused",
        "cameras",
        "purged",
        "commands",
        "clips",
        "clip_chunks",
        "owner_crops",
    ):
        assert scalar(db, f"SELECT COUNT(*) FROM {table}") == 0  # noqa: S608


def test_a_resent_event_is_stored_once(db: Database) -> None:
    jpeg = fake_jpeg(1)
    snap = (f"{BASE}/snapshots/edge-01-cam-a-000001", jpeg)
    first = ingest(db, snap, event_msg(1, snapshot=jpeg))
    again = ingest(db, snap, event_msg(1, snapshot=jpeg), event_msg(1, snapshot=jpeg))
    assert (first.events, first.duplicates, first.snapshots) == (1, 0, 1)
    assert (again.events, again.duplicates, again.snapshots) == (0, 2, 0)
    assert scalar(db, "SELECT COUNT(*) FROM events") == 1
    with db.connection() as conn:
        inc = queries.incident(conn, "edge-01-cam-a-000001")
        assert queries.snapshot_jpeg(conn, "edge-01-cam-a-000001") == jpeg
    assert inc is not None and inc["phases"] == 1 and inc["snapshot"] and inc["state"] == "new"
    assert inc["snapshot_info"] == {"received": True, "size": len(jpeg), "sha256_ok": True, "purged": False}


def test_an_incident_follows_its_phases_whatever_order_they_arrive_in(db: Database) -> None:
    start = event_msg(7, "start", ts="2026-11-26T08:15:07.400Z")
    update = event_msg(7, "update", ts="2026-11-26T08:16:07.400Z")
    end = event_msg(7, "end", ts="2026-11-26T08:17:07.400Z")
    ingest(db, end)
    ingest(db, start, update)
    with db.connection() as conn:
        inc = queries.incident(conn, "edge-01-cam-a-000007")
    assert inc is not None
    assert inc["last_phase"] == "end" and inc["ended_at"] == "2026-11-26T08:17:07.400Z"
    assert inc["phases"] == 3
    assert [p["phase"] for p in inc["timeline"]] == ["start", "update", "end"]


def test_a_snapshot_that_does_not_match_the_events_sha256_is_flagged(db: Database) -> None:
    ingest(
        db,
        (f"{BASE}/snapshots/edge-01-cam-a-000002", b"\xff\xd8 other picture \xff\xd9"),
        event_msg(2, snapshot=fake_jpeg(2)),
    )
    with db.connection() as conn:
        inc = queries.incident(conn, "edge-01-cam-a-000002")
    assert inc is not None and inc["snapshot_info"]["received"] and not inc["snapshot_info"]["sha256_ok"]


def test_contract_breakers_are_kept_apart_cut_to_size_and_do_not_become_events(db: Database) -> None:
    topic, payload = event_msg(3)
    spoofed = topic.replace("/edge-01/", "/edge-99/")  # a payload naming another device than its topic
    long_junk = b"x" * 10_000
    result = ingest(
        db,
        (topic, b"{not json"),
        (spoofed, payload),
        (f"{BASE}/events/cam-a/dumping", b"[]"),
        (f"{BASE}/stats", long_junk),
        limits=Limits(rejected_keep_bytes=100),
    )
    assert result.rejected == 4 and result.events == 0
    with db.connection() as conn:
        rows = conn.execute(sa.text("SELECT error, payload, size FROM rejected ORDER BY id")).all()
    errors = [r.error for r in rows]
    assert any("not JSON" in e for e in errors)
    assert any("device 'edge-01' is not the topic's 'edge-99'" in e for e in errors)
    kept = [r for r in rows if r.size == len(long_junk)]
    assert len(kept) == 1 and bytes(kept[0].payload) == long_junk[:100]


def test_messages_over_their_cap_are_refused_and_counted_per_box_and_kind(db: Database) -> None:
    limits = Limits(event_bytes=2048, snapshot_bytes=4096, status_bytes=1024)
    topic, payload = event_msg(4, snapshot=fake_jpeg(4))
    big_event = json.loads(payload)
    big_event["details"] = {"junk": "x" * 3000}
    big_topic = f"{BASE}/events/cam-a/dumping"
    assert len(payload) <= 2048
    result = ingest(
        db,
        (topic, payload),
        (big_topic, json.dumps(big_event).encode()),
        (f"{BASE}/snapshots/edge-01-cam-a-000004", fake_jpeg(4, 5000)),
        ("eagleeye/v1/laohu/edge-02/status", b" " * 1025),
        limits=limits,
    )
    assert (result.events, result.refused, result.snapshots) == (1, 3, 0)
    ingest(db, (big_topic, json.dumps(big_event).encode()), limits=limits)
    assert isinstance(parse_message("eagleeye", big_topic, b"x" * (256 * 1024 + 1)), Refused)  # the defaults
    with db.connection() as conn:
        counters = queries.status_counters(conn)
        sizes: dict[str, int] = dict(conn.execute(sa.text("SELECT kind, last_size FROM refused")).all())
        assert conn.execute(sa.text("SELECT COUNT(*) FROM snapshots")).scalar() == 0
        devices = [r.device for r in conn.execute(sa.text("SELECT device FROM devices ORDER BY device"))]
    assert counters["refused"] == {
        "laohu/edge-01": {"event": 2, "snapshot": 1},
        "laohu/edge-02": {"status": 1},
    }
    assert sizes["snapshot"] == len(fake_jpeg(4, 5000)) and sizes["status"] == 1025
    assert devices == ["edge-01", "edge-02"]  # a refused message still says the box is alive


def _stats(depth: int, ts: str = "2026-11-26T08:05:00.000Z") -> bytes:
    return json.dumps(
        {
            "schema": "eagleeye.stats/1",
            "ts": ts,
            "uptime_s": 300,
            "outbox": {
                "depth": depth,
                "bytes": 1,
                "max_bytes": 2,
                "dropped_total": 0,
                "dropped_by_severity": {"info": 0, "warning": 0, "alert": 0},
                "recovered_corrupt": False,
                "oldest_age_s": None,
            },
            "mqtt": {
                "connected": True,
                "published": 1,
                "acked": 1,
                "rejected": 0,
                "reconnects": 0,
                "connect_failures": 0,
                "inflight": 0,
            },
        }
    ).encode()


def test_status_history_and_health_board(db: Database) -> None:
    online = json.dumps({"state": "online", "since": "2026-11-26T08:00:00.000Z", "reason": "connected"})
    cam_on = json.dumps({"state": "online", "since": "2026-11-26T08:00:01.000Z"})
    cam_off = json.dumps({"state": "offline", "since": "2026-11-26T08:05:00.000Z"})
    ingest(db, (f"{BASE}/status", online.encode()), (f"{BASE}/cameras/bridge/status", cam_on.encode()))
    ingest(
        db,
        (f"{BASE}/cameras/bridge/status", cam_off.encode()),
        (f"{BASE}/stats", _stats(12)),
        (f"{BASE}/status", online.encode()),
        event_msg(4),
    )
    ingest(db, count_msg("2026-11-26T08:00:00.000Z", 14), count_msg("2026-11-26T08:00:00.000Z", 14))
    with db.connection() as conn:
        board = queries.health(conn, stalled_after_s=1e9)
        assert conn.execute(sa.text("SELECT COUNT(*) FROM camera_status")).scalar() == 2  # history
        assert (
            conn.execute(sa.text("SELECT COUNT(*) FROM device_status")).scalar() == 1
        )  # the same copy: once
        assert conn.execute(sa.text("SELECT COUNT(*) FROM counts")).scalar() == 1
    (dev,) = board["devices"]
    assert (dev["site"], dev["device"], dev["state"], dev["outbox_depth"]) == (
        "laohu",
        "edge-01",
        "online",
        12,
    )
    assert dev["cameras"] == [
        {
            "camera": "bridge",
            "state": "offline",
            "reported": "offline",
            "since": "2026-11-26T08:05:00.000Z",
            "name": None,
            "location": None,
        }
    ]


def _announce(db: Database, body: dict[str, Any], device: str = "edge-01") -> None:
    status = {"state": "online", "since": "2026-11-26T08:00:00.000Z", "reason": "connected", **body}
    topic = f"eagleeye/v1/laohu/{device}/status"
    record = parse_message("eagleeye", topic, json.dumps(status).encode())
    assert not isinstance(record, Rejected), record
    with db.transaction() as conn:
        write_batch(conn, [record], NOW)


def test_what_a_box_announces_is_kept_for_the_map_and_local_times(db: Database) -> None:
    _announce(
        db,
        {
            "site_name": "涝湖村",
            "timezone": "Asia/Shanghai",
            "location": {"lat": 34.25, "lon": 108.94},
            "cameras": [{"id": "bridge-east", "location": {"lat": 34.2501, "lon": 108.9402}}, {"id": "yard"}],
        },
    )
    ingest(db, event_msg(5, camera="bridge-east"))
    with db.connection() as conn:
        (dev,) = queries.health(conn, 1e9)["devices"]
        inc = queries.incident(conn, "edge-01-bridge-east-000005")
    assert (dev["site_name"], dev["timezone"], dev["location"]) == (
        "涝湖村",
        "Asia/Shanghai",
        {"lat": 34.25, "lon": 108.94},
    )
    assert [(c["camera"], c["name"], c["location"]) for c in dev["cameras"]] == [
        ("bridge-east", None, {"lat": 34.2501, "lon": 108.9402}),
        ("yard", None, None),
    ]
    assert inc is not None and (inc["site_name"], inc["timezone"]) == ("涝湖村", "Asia/Shanghai")
    # The latest announcement wins: a camera taken out goes, a zone this machine does not know is dropped.
    _announce(db, {"site_name": "涝湖村", "timezone": "Mars/Olympus", "cameras": [{"id": "yard"}]})
    with db.connection() as conn:
        (dev,) = queries.health(conn, 1e9)["devices"]
    assert (dev["timezone"], dev["location"]) == (None, None)
    assert [c["camera"] for c in dev["cameras"]] == ["yard"]


def ids(db: Database, **kw: Any) -> list[str]:
    with db.connection() as conn:
        return [i["event_id"] for i in queries.incidents(conn, queries.IncidentFilter(**kw))]


def test_filters_tabs_and_the_order_open_alerts_then_open_warnings_then_the_rest(db: Database) -> None:
    ingest(
        db,
        event_msg(10, camera="cam-a", severity="alert"),
        event_msg(20, camera="cam-b"),
        event_msg(30, camera="cam-b", severity="info"),
        event_msg(40, severity="alert"),
        event_msg(50, severity="warning"),
    )
    with db.transaction() as conn:
        workflow.transition(conn, "edge-01-cam-a-000040", "resolved", who="duty", now=NOW)
    assert ids(db) == [
        "edge-01-cam-a-000010",
        "edge-01-cam-a-000050",
        "edge-01-cam-b-000020",
        "edge-01-cam-a-000040",
    ]
    assert ids(db, tab="info") == ["edge-01-cam-b-000030"]
    assert len(ids(db, tab="all")) == 5
    assert ids(db, camera="cam-b", tab="all") == ["edge-01-cam-b-000020", "edge-01-cam-b-000030"]
    assert ids(db, severity="alert", state="open") == ["edge-01-cam-a-000010"]
    assert ids(db, state="resolved") == ["edge-01-cam-a-000040"]
    assert ids(
        db, from_epoch=queries_epoch("2026-11-26T08:15:15Z"), to_epoch=queries_epoch("2026-11-26T08:15:25Z")
    ) == ["edge-01-cam-b-000020"]
    assert ids(db, site="elsewhere") == []
    with pytest.raises(ValueError, match="state: one of open"):
        queries.IncidentFilter(state="closed")
    with pytest.raises(ValueError, match="limit"):
        queries.IncidentFilter(limit=5000)


def queries_epoch(ts: str) -> float:
    from edge_agent.console.records import epoch

    return epoch(ts)


def test_the_workflow_records_who_did_what_and_when(db: Database) -> None:
    ingest(db, event_msg(1, severity="alert"), event_msg(2), at=NOW)
    eid = "edge-01-cam-a-000001"
    with db.transaction() as conn:
        inc = workflow.transition(conn, eid, "acknowledged", who="duty", now=NOW + 95.5, note="looking")
    assert (inc["state"], inc["acknowledged_by"], inc["time_to_ack_s"]) == ("acknowledged", "duty", 95.5)
    for bad, status in (("resolved-ish", 422), ("acknowledged", 409), ("new", 409)):
        with pytest.raises(WorkflowError) as info, db.transaction() as conn:
            workflow.transition(conn, eid, bad, who="duty", now=NOW + 100)
        assert info.value.status == status, bad
    with pytest.raises(WorkflowError) as info, db.transaction() as conn:
        workflow.transition(conn, eid, "dispatched", who="duty", now=NOW + 100)
    assert info.value.status == 422 and "assignee" in info.value.message
    with pytest.raises(WorkflowError) as info, db.transaction() as conn:
        workflow.transition(conn, "no-such-event", "acknowledged", who="duty", now=NOW)
    assert info.value.status == 404
    with db.transaction() as conn:
        workflow.transition(conn, eid, "dispatched", who="duty", now=NOW + 200, assignee="Wang Wei")
        workflow.add_note(conn, eid, who="wang", now=NOW + 300, text="on site, a bin bag")
        inc = workflow.transition(conn, eid, "resolved", who="wang", now=NOW + 400)
    assert (inc["state"], inc["assignee"], inc["verdict"]) == ("resolved", "Wang Wei", "confirmed")
    assert inc["resolved_at"] == "2026-11-26T08:21:40.000Z" and inc["time_to_ack_s"] == 95.5
    assert [
        (a["who"], a["action"], a["from_state"], a["to_state"], a["assignee"], a["note"])
        for a in inc["audit"]
    ] == [
        ("duty", "state", "new", "acknowledged", None, "looking"),
        ("duty", "state", "acknowledged", "dispatched", "Wang Wei", None),
        ("wang", "note", "dispatched", "dispatched", None, "on site, a bin bag"),
        ("wang", "state", "dispatched", "resolved", None, None),
    ]
    assert inc["audit"][0]["at"] == "2026-11-26T08:16:35.500Z"
    with db.transaction() as conn:  # reopen, then the old clients' verdict
        workflow.transition(conn, eid, "acknowledged", who="li", now=NOW + 500)
        inc = workflow.apply_verdict(conn, eid, "false_alarm", who="li", now=NOW + 600)
    assert (inc["state"], inc["verdict"], inc["acknowledged_by"]) == ("false_alarm", "false_alarm", "duty")
    with db.transaction() as conn:
        bulk = workflow.transition_many(
            conn, [eid, "edge-01-cam-a-000002", "nope"], "acknowledged", who="duty", now=NOW + 700
        )
    assert bulk["changed"] == ["edge-01-cam-a-000001", "edge-01-cam-a-000002"]
    assert list(bulk["errors"]) == ["nope"]
    with db.transaction() as conn:
        again = workflow.transition_many(conn, [eid], "acknowledged", who="duty", now=NOW + 800)
    assert again["changed"] == [] and "acknowledged already" in again["errors"][eid]
    assert scalar(db, f"SELECT COUNT(*) FROM incident_audit WHERE event_id = '{eid}'") == 7  # noqa: S608


def _old_and_new(db: Database) -> None:
    """Rows of every kind, half received 100 days before NOW, half one day before."""
    online = b'{"state": "online", "since": "2026-08-18T08:00:00.000Z"}'
    for seq, age in ((1, 100), (2, 100), (4, 100), (3, 1)):
        at = NOW - age * DAY
        ev = json.loads(event_msg(seq, snapshot=fake_jpeg(seq))[1])
        ev["started_at"] = ev["ts"] = queries._iso(at)
        ingest(
            db,
            (f"{BASE}/events/cam-a/dumping", json.dumps(ev).encode()),
            (f"{BASE}/snapshots/{ev['event_id']}", fake_jpeg(seq)),
            (f"{BASE}/status", online.replace(b"08:00", f"08:{seq:02d}".encode())),
            (f"{BASE}/counts/bridge/people", count_msg(queries._iso(at) or "", seq)[1]),
            (f"{BASE}/stats", _stats(seq, queries._iso(at + seq) or "")),
            (f"{BASE}/events/cam-a/dumping", b"junk"),
            ("eagleeye/v1/laohu/edge-09/stats", b" " * 300_000),
            at=at,
        )
    with db.transaction() as conn:
        workflow.transition(conn, "edge-01-cam-a-000001", "false_alarm", who="duty", now=NOW - 99 * DAY)
        workflow.transition(conn, "edge-01-cam-a-000003", "resolved", who="duty", now=NOW)


def test_retention_deletes_what_is_older_than_configured_and_nothing_newer(db: Database) -> None:
    _old_and_new(db)
    days = {
        "events": 30,
        "snapshots": 10,
        "stats": 30,
        "status": 30,
        "counts": 30,
        "rejected": 30,
        "refused": 30,
    }
    with db.transaction() as conn:
        done = retention.purge(conn, days, NOW)
    # incident 1: closed and old -> gone; 2 and 4: old but still open -> kept with their JPEGs;
    # 3: new -> kept. Stats and status: the newest row of the box stays, however old.
    assert done == {
        "events": 1,
        "snapshots": 0,
        "stats": 3,
        "status": 3,
        "counts": 3,
        "rejected": 3,
        "refused": 0,
    }
    assert ids(db, tab="all") == ["edge-01-cam-a-000002", "edge-01-cam-a-000004", "edge-01-cam-a-000003"]
    for table, left in (
        ("events", 3),
        ("snapshots", 3),
        ("incident_audit", 1),
        ("stats", 1),
        ("device_status", 1),
        ("counts", 1),
        ("rejected", 1),
        ("refused", 1),
    ):
        assert scalar(db, f"SELECT COUNT(*) FROM {table}") == left, table  # noqa: S608
    with db.transaction() as conn:  # the newer incident closes: its JPEG is older than 0.5 days
        done = retention.purge(conn, {**days, "snapshots": 0.5}, NOW)
        jpeg = queries.snapshot_jpeg(conn, "edge-01-cam-a-000003")
        inc = queries.incident(conn, "edge-01-cam-a-000003")
        counters = queries.status_counters(conn)
    assert done["snapshots"] == 1 and jpeg is None
    assert inc is not None and inc["snapshot_info"]["purged"] and inc["state"] == "resolved"
    assert counters["purged"] == {
        "counts": 3,
        "events": 1,
        "rejected": 3,
        "snapshots": 1,
        "stats": 3,
        "status": 3,
    }
    with db.transaction() as conn:
        assert retention.purge(conn, {"refused": 0.5}, NOW) == {"refused": 1}
        assert set(retention.purge(conn, days, NOW).values()) == {0}  # nothing left to do


def test_the_purger_thread_works_in_chunks(db: Database) -> None:
    _old_and_new(db)
    purger = retention.Purger(db)
    purger.CHUNK_ROWS = 1
    total = purger.run_once(now=NOW + 400 * DAY)
    assert total["events"] == 2 and total["counts"] == 0  # two closed incidents; counts live 730 days
    assert scalar(db, "SELECT COUNT(*) FROM incidents") == 2  # the open ones


def test_the_purger_runs_in_its_thread_with_the_configs_days(db: Database) -> None:
    _old_and_new(db)
    cfg = SimpleNamespace(days=SimpleNamespace(**{**retention.DEFAULT_DAYS, "rejected": 50}), interval_s=3600)
    purger = retention.Purger(db, cfg)
    purger.start()
    deadline = time.monotonic() + 20
    while purger.last_run is None and time.monotonic() < deadline:
        time.sleep(0.05)
    purger.stop()
    assert purger.last_error is None and purger.last_run is not None
    old = scalar(db, f"SELECT COUNT(*) FROM rejected WHERE received_at < {purger.last_run - 50 * DAY}")  # noqa: S608
    assert purger.last_result["rejected"] >= 3 and old == 0  # the rows 100 days older than NOW went


def test_count_series_per_local_hour_and_day_each_aggregate_once(db: Database) -> None:
    ingest(
        db,
        count_msg("2026-11-26T15:50:00.000Z", 3, complete=False),
        count_msg("2026-11-26T15:50:00.000Z", 5),  # supersedes the partial one
        count_msg("2026-11-26T16:00:00.000Z", 7),
        count_msg("2026-11-26T16:10:00.000Z", 2, complete=False),
        count_msg("2026-11-26T16:10:00.000Z", 4, complete=False),  # newer partial, no complete yet
        count_msg("2026-11-26T16:00:00.000Z", 1, camera="gate"),
    )
    with db.connection() as conn:
        hours = queries.count_series(conn, bucket="hour", tz="Asia/Shanghai")
        days = queries.count_series(conn, bucket="day", tz="America/Los_Angeles", camera="bridge")
        rows = queries.count_rows(conn)
        with pytest.raises(ValueError, match="unknown IANA time zone"):
            queries.count_series(conn, bucket="hour", tz="Nowhere/Town")
    assert [(h["bucket"], h["camera"], h["count"]) for h in hours] == [
        ("2026-11-26T23:00:00+08:00", "bridge", 5),
        ("2026-11-27T00:00:00+08:00", "bridge", 11),
        ("2026-11-27T00:00:00+08:00", "gate", 1),
    ]
    assert [(d["bucket"], d["count"]) for d in days] == [("2026-11-26T00:00:00-08:00", 16)]
    assert sorted((r["camera"], r["interval_start"], r["complete"], r["count"]) for r in rows) == [
        ("bridge", "2026-11-26T15:50:00.000Z", True, 5),
        ("bridge", "2026-11-26T16:00:00.000Z", True, 7),
        ("bridge", "2026-11-26T16:10:00.000Z", False, 4),
        ("gate", "2026-11-26T16:00:00.000Z", True, 1),
    ]


def test_incident_rows_for_the_export(db: Database) -> None:
    ingest(db, event_msg(1, severity="alert"), event_msg(2, severity="info"))
    with db.transaction() as conn:
        workflow.transition(conn, "edge-01-cam-a-000001", "acknowledged", who="duty", now=NOW + 10)
    with db.connection() as conn:
        rows = queries.incidents_rows(conn, queries.IncidentFilter(tab="all"))
    assert [tuple(r) for r in rows] == [queries.EXPORT_COLUMNS] * 2
    assert [(r["event_id"], r["state"], r["time_to_ack_s"]) for r in rows] == [
        ("edge-01-cam-a-000001", "acknowledged", 10.0),
        ("edge-01-cam-a-000002", "new", None),
    ]


def test_records_are_parsed_from_the_topic_tree() -> None:
    topic, payload = event_msg(5)
    assert isinstance(parse_message("eagleeye", topic, payload), EventRecord)
    assert isinstance(parse_message("eagleeye", f"{BASE}/status", b'{"state": "sleepy"}'), Rejected)
    assert isinstance(parse_message("eagleeye", f"{BASE}/counts/bridge/people", b'{"in": 4}'), Rejected)


def test_a_wrong_password_in_the_database_url_is_never_shown() -> None:
    cfg = parse_console_config(
        "version: 1\nmqtt: {url: 'mqtt://b'}\ndatabase: {url: 'postgresql://u:s3cret@db/x'}\n"
    )
    assert "s3cret" not in repr(cfg)
    assert "s3cret" not in Database(cfg.database.url).shown


def test_a_retained_status_replayed_on_subscribe_is_not_news_from_the_box(db: Database) -> None:
    online = parse_message(
        "eagleeye", f"{BASE}/status", b'{"state": "online", "since": "2026-11-26T08:00:00.000Z"}'
    )
    event = parse_message("eagleeye", *event_msg(8))

    def last_seen() -> float:
        return float(scalar(db, "SELECT last_seen FROM devices WHERE device = 'edge-01'"))

    with db.transaction() as conn:
        write_batch(conn, [online], 1000.0, retained=[True])  # registers the box
    with db.transaction() as conn:
        write_batch(conn, [online], 2000.0, retained=[True])  # the console restarted: the same copy again
    assert last_seen() == 1000.0
    with db.transaction() as conn:
        write_batch(conn, [event], 3000.0, retained=[False])
    assert last_seen() == 3000.0
