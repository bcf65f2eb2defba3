"""The console's schema and writes on both engines: migrations, dedup, incident lifecycle, statuses.

Every test runs on SQLite and on a real PostgreSQL (Debian's server, started in a
temp dir by `tests/postgres.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.console import queries
from edge_agent.console.config import parse_console_config
from edge_agent.console.db import Database
from edge_agent.console.migrations import available, migrate
from edge_agent.console.records import EventRecord, Rejected, parse_message
from edge_agent.console.store import set_verdict, write_batch
from edge_agent.core.config import ConfigError
from tests.broker import fake_jpeg, make_event
from tests.postgres import postgres_server, postgres_url  # noqa: F401

BASE = "eagleeye/v1/laohu/edge-01"


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


def ingest(db: Database, *messages: tuple[str, bytes]):  # type: ignore[no-untyped-def]
    records = [parse_message("eagleeye", t, p) for t, p in messages]
    with db.transaction() as conn:
        return write_batch(conn, records, 1_764_144_000.0)


def test_migrations_apply_once_and_record_their_versions(db: Database) -> None:
    assert migrate(db) == []  # already applied by the fixture: nothing to do
    with db.connection() as conn:
        rows = conn.all("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in available()]
        for table in ("events", "incidents", "snapshots", "device_status", "camera_status", "stats",
                      "counts", "verdicts", "devices", "rejected"):  # fmt: skip
            assert conn.scalar(f"SELECT COUNT(*) FROM {table}") == 0  # noqa: S608


def test_a_resent_event_is_stored_once(db: Database) -> None:
    jpeg = fake_jpeg(1)
    snap = (f"{BASE}/snapshots/edge-01-cam-a-000001", jpeg)
    first = ingest(db, snap, event_msg(1, snapshot=jpeg))
    again = ingest(db, snap, event_msg(1, snapshot=jpeg), event_msg(1, snapshot=jpeg))
    assert (first.events, first.duplicates, first.snapshots) == (1, 0, 1)
    assert (again.events, again.duplicates, again.snapshots) == (0, 2, 0)
    with db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM events") == 1
        inc = queries.incident(conn, "edge-01-cam-a-000001")
    assert inc is not None and inc["phases"] == 1
    assert inc["snapshot"] == {"received": True, "size": len(jpeg), "sha256_ok": True}


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
    ingest(db, (f"{BASE}/snapshots/edge-01-cam-a-000002", b"\xff\xd8 other picture \xff\xd9"),
           event_msg(2, snapshot=fake_jpeg(2)))  # fmt: skip
    with db.connection() as conn:
        inc = queries.incident(conn, "edge-01-cam-a-000002")
    assert inc is not None and inc["snapshot"]["received"] and not inc["snapshot"]["sha256_ok"]


def test_contract_breakers_are_kept_apart_and_do_not_become_events(db: Database) -> None:
    topic, payload = event_msg(3)
    spoofed = topic.replace("/edge-01/", "/edge-99/")  # a payload naming another device than its topic
    result = ingest(db, (topic, b"{not json"), (spoofed, payload), (f"{BASE}/events/cam-a/dumping", b"[]"))
    assert result.rejected == 3 and result.events == 0
    with db.connection() as conn:
        errors = [r["error"] for r in conn.all("SELECT error FROM rejected ORDER BY id")]
    assert any("not JSON" in e for e in errors)
    assert any("device 'edge-01' is not the topic's 'edge-99'" in e for e in errors)


def test_status_history_health_board_and_verdicts(db: Database) -> None:
    online = json.dumps({"state": "online", "since": "2026-11-26T08:00:00.000Z", "reason": "connected"})
    cam_on = json.dumps({"state": "online", "since": "2026-11-26T08:00:01.000Z"})
    cam_off = json.dumps({"state": "offline", "since": "2026-11-26T08:05:00.000Z"})
    stats = json.dumps({
        "schema": "eagleeye.stats/1", "ts": "2026-11-26T08:05:00.000Z", "uptime_s": 300,
        "outbox": {"depth": 12, "bytes": 1, "max_bytes": 2, "dropped_total": 0,
                   "dropped_by_severity": {"info": 0, "warning": 0, "alert": 0},
                   "recovered_corrupt": False, "oldest_age_s": None},
        "mqtt": {"connected": True, "published": 1, "acked": 1, "rejected": 0, "reconnects": 0,
                 "connect_failures": 0, "inflight": 0},
    })  # fmt: skip
    ingest(db, (f"{BASE}/status", online.encode()), (f"{BASE}/cameras/bridge/status", cam_on.encode()))
    ingest(db, (f"{BASE}/cameras/bridge/status", cam_off.encode()), (f"{BASE}/stats", stats.encode()),
           (f"{BASE}/status", online.encode()), event_msg(4))  # fmt: skip
    count = json.dumps({"interval_s": 600, "in": 14}).encode()
    ingest(db, (f"{BASE}/counts/bridge/sorting", count), (f"{BASE}/counts/bridge/sorting", count))
    with db.connection() as conn:
        board = queries.health(conn, stalled_after_s=1e9)
        assert conn.scalar("SELECT COUNT(*) FROM camera_status") == 2  # history, not just the latest
        assert conn.scalar("SELECT COUNT(*) FROM device_status") == 1  # the retained copy again: deduplicated
        assert conn.scalar("SELECT COUNT(*) FROM counts") == 1
    (dev,) = board["devices"]
    assert (dev["site"], dev["device"], dev["state"], dev["outbox_depth"]) == (
        "laohu",
        "edge-01",
        "online",
        12,
    )
    assert dev["cameras"] == [{"camera": "bridge", "state": "offline", "reported": "offline",
                               "since": "2026-11-26T08:05:00.000Z"}]  # fmt: skip
    with db.transaction() as conn:
        assert set_verdict(
            conn, "edge-01-cam-a-000004", "false_alarm", "duty", "2026-11-26T09:00:00.000Z", 1.0
        )
        assert not set_verdict(conn, "no-such-event", "confirmed", "duty", "2026-11-26T09:00:00.000Z", 1.0)
    with db.connection() as conn:
        inc = queries.incident(conn, "edge-01-cam-a-000004")
        listed = queries.incidents(conn, queries.IncidentFilter(verdict="false_alarm"))
    assert inc is not None and (inc["verdict"], inc["verdict_by"]) == ("false_alarm", "duty")
    assert [v["by_user"] for v in inc["verdicts"]] == ["duty"]
    assert [i["event_id"] for i in listed] == ["edge-01-cam-a-000004"]


def test_filters_select_by_place_rule_severity_and_time(db: Database) -> None:
    ingest(db, event_msg(10, camera="cam-a", severity="alert"), event_msg(20, camera="cam-b"),
           event_msg(30, camera="cam-b", severity="info"))  # fmt: skip

    def ids(**kw: object) -> list[str]:
        with db.connection() as conn:
            return [i["event_id"] for i in queries.incidents(conn, queries.IncidentFilter(**kw))]  # type: ignore[arg-type]

    assert ids(camera="cam-b") == ["edge-01-cam-b-000030", "edge-01-cam-b-000020"]
    assert ids(severity="alert") == ["edge-01-cam-a-000010"]
    assert ids(from_ts="2026-11-26T08:15:15Z", to_ts="2026-11-26T08:15:25Z") == ["edge-01-cam-b-000020"]
    assert ids(site="elsewhere") == []


def test_records_are_parsed_from_the_topic_tree() -> None:
    topic, payload = event_msg(5)
    assert isinstance(parse_message("eagleeye", topic, payload), EventRecord)
    assert isinstance(parse_message("eagleeye", f"{BASE}/status", b'{"state": "sleepy"}'), Rejected)


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("version: 1\nmqtt: {url: 'mqtt://b'}\nwebb: {}\n", "webb: unknown key 'webb'"),
        ("version: 1\nmqtt: {url: 'http://b'}\n", "mqtt.url: expected mqtt://host[:port]"),
        ("version: 1\nmqtt: {url: 'mqtt://b', group: town, protocol: '3.1.1'}\n", "needs protocol: '5'"),
        ("version: 1\nmqtt: {url: 'mqtt://b'}\ndatabase: {url: 'mysql://x'}\n", "database.url: expected"),
        ("version: 1\nmqtt: {url: 'mqtt://b'}\nweb: {auth: {users: [{name: duty}]}}\n",
         "web.auth.users[0]: give exactly one of password and password_file"),
        ("version: 1\nmqtt: {url: 'mqtt://b', password: '${NO_SUCH_VAR}'}\n",
         "mqtt.password: environment variable NO_SUCH_VAR is not set"),
    ],
)  # fmt: skip
def test_config_errors_name_their_path(yaml_text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_console_config(yaml_text, env={"EDGE_X": "1"}, source="console.yaml")
    assert any(problem in str(p) for p in info.value.problems), info.value.problems


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
        with db.connection() as conn:
            return float(conn.scalar("SELECT last_seen FROM devices WHERE device = 'edge-01'"))

    with db.transaction() as conn:
        write_batch(conn, [online], 1000.0, retained=[True])  # registers the box
    with db.transaction() as conn:
        write_batch(conn, [online], 2000.0, retained=[True])  # the console restarted: the same copy again
    assert last_seen() == 1000.0
    with db.transaction() as conn:
        write_batch(conn, [event], 3000.0, retained=[False])
    assert last_seen() == 3000.0
