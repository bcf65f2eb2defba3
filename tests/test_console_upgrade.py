"""A database made by the console's first release upgrades in place and keeps every row.

`tests/data/console-v1/` holds databases the first release made through its own
migrations and writes (`make_v1.py` says how): a SQLite dump and a PostgreSQL
plain-SQL dump. Each is loaded into a real database, `migrate()` runs, and
every row of every old table must still be there, with the old verdicts now
workflow states with their audit rows.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edge_agent.console import devices, queries, tables
from edge_agent.console.db import Database, DatabaseError
from edge_agent.console.migrations import head, migrate
from edge_agent.console.records import parse_message
from edge_agent.console.store import write_batch
from edge_agent.contract.commands import CommandResult
from tests.broker import make_event
from tests.postgres import postgres_server, postgres_url  # noqa: F401

DATA = Path(__file__).parent / "data" / "console-v1"
# Every table of the first release with the columns it had; `verdicts` becomes audit rows.
V1_TABLES = {
    "events": "id, event_id, phase, ts, ts_epoch, site, device, camera, rule, kind, severity, topic, payload,"
    " received_at",
    "incidents": "event_id, site, device, camera, rule, kind, severity, zone, label, score, started_at,"
    " started_epoch, last_phase, last_ts, last_epoch, ended_at, duration_s, phases, objects,"
    " snapshot_topic, snapshot_sha256, first_received, updated_at",
    "snapshots": "event_id, site, device, topic, sha256, size, jpeg, received_at",
    "device_status": "id, site, device, state, since, reason, received_at",
    "camera_status": "id, site, device, camera, state, since, received_at",
    "stats": "id, site, device, ts, outbox_depth, outbox_dropped, payload, received_at",
    "counts": "id, site, device, camera, rule, payload, payload_sha256, received_at",
    "devices": "site, device, first_seen, last_seen",
    "rejected": "id, topic, error, payload, received_at",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def v1_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database as the first release left it."""
    if request.param == "sqlite":
        path = tmp_path / "console.sqlite3"
        raw = sqlite3.connect(path)
        raw.executescript((DATA / "console.sql").read_text(encoding="utf-8"))
        raw.close()
        url = f"sqlite:///{path}"
    else:
        import psycopg

        url = request.getfixturevalue("postgres_url")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((DATA / "console-pg.sql").read_text(encoding="utf-8"))
    db = Database(url)
    yield db
    db.close()


def _rows(db: Database, table: str, columns: str) -> list[tuple[Any, ...]]:
    with db.connection() as conn:
        rows = conn.execute(sa.text(f"SELECT {columns} FROM {table}")).all()  # noqa: S608 (fixed names)
    return sorted((tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows), key=repr)


def test_a_first_release_database_upgrades_in_place_and_keeps_every_row(v1_db: Database) -> None:
    before = {table: _rows(v1_db, table, cols) for table, cols in V1_TABLES.items()}
    verdicts = _rows(v1_db, "verdicts", "id, event_id, verdict, by_user, at, note")
    assert all(before.values()) and len(verdicts) == 4, "the test data has rows in every table"

    # stamped at 0001 (the first release's schema), then upgraded
    assert migrate(v1_db) == ["0002", "0003", "0004"]
    assert migrate(v1_db) == []
    for table, cols in V1_TABLES.items():
        assert _rows(v1_db, table, cols) == before[table], table
    with v1_db.connection() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert "verdicts" not in names
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head()
        # The first release's runner reads this: it now refuses the database instead of re-creating it.
        assert conn.execute(sa.text("SELECT MAX(version) FROM schema_migrations")).scalar() == 2
        states: dict[str, str] = dict(conn.execute(sa.text("SELECT event_id, state FROM incidents")).all())
        confirmed = queries.incident(conn, "edge-01-cam-a-000001")
        changed_twice = queries.incident(conn, "edge-01-bridge-000003")
        count_facts = conn.execute(
            sa.text("SELECT rule, interval_start, complete, count FROM counts ORDER BY id")
        ).all()
    assert states == {
        "edge-01-cam-a-000001": "resolved",
        "edge-01-cam-a-000002": "false_alarm",
        "edge-01-bridge-000003": "false_alarm",
        "edge-01-cam-a-000004": "new",
        "edge-01-cam-a-000006": "new",
        "edge-02-gate-000005": "new",
    }
    assert confirmed is not None and changed_twice is not None
    assert confirmed["verdict"] == "confirmed" and confirmed["snapshot_info"]["sha256_ok"]
    assert [
        (a["who"], a["from_state"], a["to_state"], a["note"], a["at"]) for a in changed_twice["audit"]
    ] == [
        ("duty", "new", "resolved", None, "2026-11-26T08:32:00.000Z"),
        ("li", "resolved", "false_alarm", "only a bin bag", "2026-11-26T08:40:00.000Z"),
    ]
    assert changed_twice["resolved_at"] == "2026-11-26T08:40:00.000Z"
    audit = _rows(v1_db, "incident_audit", "event_id, who, note")
    assert audit == sorted(((v[1], v[3], v[5]) for v in verdicts), key=repr)  # every verdict given
    facts = [(str(r[0]), r[1], None if r[2] is None else bool(r[2]), r[3]) for r in count_facts]
    assert ("people", "2026-11-26T08:00:00.000Z", True, 17) in facts
    assert ("legacy", None, None, None) in facts  # not an eagleeye.count/1: kept as it was


def test_an_upgraded_database_takes_new_rows_after_the_old_ones(v1_db: Database) -> None:
    migrate(v1_db)
    old_max = max(r[0] for r in _rows(v1_db, "events", "id"))
    ev = make_event(99, severity="alert").to_dict()
    records = [
        parse_message("eagleeye", "eagleeye/v1/laohu/edge-01/events/cam-a/dumping", json.dumps(ev).encode()),
        parse_message(
            "eagleeye",
            "eagleeye/v1/laohu/edge-01/status",
            b'{"state": "online", "since": "2026-11-27T08:00:00.000Z"}',
        ),
    ]
    with v1_db.transaction() as conn:
        result = write_batch(conn, records, 1_795_800_000.0)
    assert (result.events, result.statuses) == (1, 1)
    with v1_db.connection() as conn:
        new_id = conn.execute(
            sa.text("SELECT id FROM events WHERE event_id = 'edge-01-cam-a-000099'")
        ).scalar()
        listed = queries.incidents(conn, queries.IncidentFilter(tab="all"))
    assert new_id > old_max  # the id sequences went on from the old rows
    assert listed[0]["event_id"] == "edge-01-cam-a-000099"  # an open alert leads the list

    # the commands of the newest revision: a snapshot that timed out, answered late through the ingest
    with v1_db.transaction() as conn:
        conn.execute(
            sa.insert(tables.commands).values(
                id="c0ffee0000000001", site="laohu", device="edge-01", action="snapshot",
                args='{"camera": "cam-a"}', who="duty", issued_at=1_795_800_100.0,
                expires_at=1_795_800_130.0, deadline=1_795_800_190.0, state="timeout",
            )
        )  # fmt: skip
    jpeg = b"\xff\xd8 not much of a picture \xff\xd9"
    late = CommandResult(
        "c0ffee0000000001", "snapshot", "laohu", "edge-01", "applied", "cam-a: 2x2 JPEG",
        {"camera": "cam-a", "jpeg": base64.b64encode(jpeg).decode()},
    )  # fmt: skip
    record = parse_message("eagleeye", "eagleeye/v1/laohu/edge-01/commands/snapshot/result", late.payload())
    with v1_db.transaction() as conn:
        write_batch(conn, [record], 1_795_800_200.0)
    with v1_db.transaction() as conn:
        view = devices.device_view(conn, "laohu", "edge-01", 120.0)
        picture = devices.snapshot_jpeg(conn, "laohu", "edge-01", "c0ffee0000000001")
    assert view is not None
    [row] = view["history"]
    assert (row["state"], row["who"], row["message"], row["snapshot"]) == (
        "applied",
        "duty",
        "cam-a: 2x2 JPEG",
        True,
    )
    assert row["data"] == {"camera": "cam-a"} and picture == jpeg


def test_a_database_newer_than_this_console_is_refused(v1_db: Database) -> None:
    migrate(v1_db)
    with v1_db.transaction() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(DatabaseError, match="newer than this console knows"):
        migrate(v1_db)
