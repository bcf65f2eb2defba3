"""Makes this directory's databases with the console's first release (commit 0f1029d).

    mkdir /tmp/v1 && git archive 0f1029d edge_agent tests mqtt models | tar -x -C /tmp/v1
    PYTHONPATH=/tmp/v1 .venv/bin/python tests/data/console-v1/make_v1.py tests/data/console-v1

It fills a SQLite and a PostgreSQL database through that release's own
migrations and `store.write_batch`/`set_verdict`, then writes `console.sql`
(SQLite's .dump) and `console-pg.sql` (pg_dump --inserts, psql meta-commands
left out). `tests/test_console_upgrade.py` loads them and upgrades them.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from edge_agent.console.db import Database
from edge_agent.console.migrations import migrate
from edge_agent.console.records import parse_message
from edge_agent.console.store import set_verdict, write_batch
from tests.broker import fake_jpeg, make_event
from tests.postgres import Postgres

T0 = 1_795_680_900.0  # 2026-11-26T08:15:00Z, as the events


def _event(
    seq: int,
    phase: str,
    minute: int,
    device: str = "edge-01",
    site: str = "laohu",
    camera: str = "cam-a",
    severity: str = "warning",
    snap: bytes | None = None,
) -> tuple[str, bytes]:
    ev = make_event(
        seq, phase=phase, device=device, site=site, camera=camera, severity=severity, snapshot=snap
    ).to_dict()
    ev["ts"] = f"2026-11-26T08:{15 + minute:02d}:{seq % 60:02d}.400Z"
    ev["duration_s"] = 30.0 + 60 * minute
    return f"eagleeye/v1/{site}/{device}/events/{camera}/dumping", json.dumps(ev).encode()


def _status(site: str, device: str, state: str, since: str, reason: str) -> tuple[str, bytes]:
    body = {"state": state, "since": since, "reason": reason}
    return f"eagleeye/v1/{site}/{device}/status", json.dumps(body).encode()


def _stats(site: str, device: str, ts: str, depth: int) -> tuple[str, bytes]:
    body = {
        "schema": "eagleeye.stats/1",
        "ts": ts,
        "uptime_s": 300,
        "outbox": {
            "depth": depth,
            "bytes": 100 * depth,
            "max_bytes": 1 << 30,
            "dropped_total": 0,
            "dropped_by_severity": {"info": 0, "warning": 0, "alert": 0},
            "recovered_corrupt": False,
            "oldest_age_s": None,
        },
        "mqtt": {
            "connected": True,
            "published": 9,
            "acked": 9,
            "rejected": 0,
            "reconnects": 0,
            "connect_failures": 0,
            "inflight": 0,
        },
    }
    return f"eagleeye/v1/{site}/{device}/stats", json.dumps(body).encode()


def _count(start_min: int, count: int, complete: bool) -> tuple[str, bytes]:
    start = f"2026-11-26T08:{start_min:02d}:00.000Z"
    body = {
        "schema": "eagleeye.count/1",
        "site": "laohu",
        "device": "edge-01",
        "camera": "bridge",
        "rule": "people",
        "zone": "bridge",
        "line": None,
        "labels": ["person"],
        "interval_start": start,
        "interval_end": f"2026-11-26T08:{start_min + 10:02d}:00.000Z",
        "interval_s": 600,
        "complete": complete,
        "count": count,
        "by_label": {"person": count},
        "directions": None,
        "dwell": None,
        "media_s": 600.0,
        "ts": f"2026-11-26T08:{start_min + 10:02d}:00.100Z",
    }
    return "eagleeye/v1/laohu/edge-01/counts/bridge/people", json.dumps(body).encode()


def fill(db: Database) -> None:
    batches: list[list[tuple[str, bytes]]] = [
        [
            _status("laohu", "edge-01", "online", "2026-11-26T08:00:00.000Z", "connected"),
            (
                "eagleeye/v1/laohu/edge-01/cameras/cam-a/status",
                b'{"state": "online", "since": "2026-11-26T08:00:01.000Z"}',
            ),
            (
                "eagleeye/v1/laohu/edge-01/cameras/bridge/status",
                b'{"state": "online", "since": "2026-11-26T08:00:01.000Z"}',
            ),
            _status("xiwan", "edge-02", "online", "2026-11-26T08:00:05.000Z", "connected"),
        ],
        [
            _event(1, "start", 0, snap=fake_jpeg(1, 600)),
            ("eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000001", fake_jpeg(1, 600)),
            _event(2, "start", 0, severity="alert", snap=fake_jpeg(2, 600)),
            ("eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000002", fake_jpeg(2, 600)),
            _event(3, "start", 0, camera="bridge"),
            _event(4, "start", 0, severity="info"),
            _event(5, "start", 0, device="edge-02", site="xiwan", camera="gate", severity="alert"),
        ],
        [
            _event(1, "update", 1, snap=fake_jpeg(1, 600)),
            _event(2, "end", 2, severity="alert"),
            _event(3, "end", 1, camera="bridge"),
            _stats("laohu", "edge-01", "2026-11-26T08:15:30.000Z", 3),
            _event(6, "start", 1, severity="alert"),
            (
                "eagleeye/v1/laohu/edge-01/cameras/bridge/status",
                b'{"state": "offline", "since": "2026-11-26T08:16:00.000Z"}',
            ),
        ],
        [
            _event(1, "end", 3),
            _event(5, "end", 2, device="edge-02", site="xiwan", camera="gate", severity="alert"),
            _stats("laohu", "edge-01", "2026-11-26T08:16:00.000Z", 0),
            _stats("xiwan", "edge-02", "2026-11-26T08:16:05.000Z", 12),
            _count(0, 14, False),
            _count(0, 17, True),
            _count(10, 4, True),
            ("eagleeye/v1/laohu/edge-01/counts/bridge/legacy", b'{"interval_s": 600, "in": 14}'),
            ("eagleeye/v1/laohu/edge-01/events/cam-a/dumping", b"{not json"),
            ("eagleeye/v1/laohu/edge-01/status", b'{"state": "sleepy"}'),
            _status("xiwan", "edge-02", "offline", "2026-11-26T08:00:05.000Z", "connection_lost"),
        ],
    ]
    for i, batch in enumerate(batches):
        records = [parse_message("eagleeye", t, p) for t, p in batch]
        with db.transaction() as conn:
            write_batch(conn, records, T0 + 60 * i)
    with db.transaction() as conn:
        set_verdict(conn, "edge-01-cam-a-000001", "confirmed", "duty", "2026-11-26T08:30:00.000Z", T0 + 900)
        set_verdict(
            conn,
            "edge-01-cam-a-000002",
            "false_alarm",
            "wang",
            "2026-11-26T08:31:00.000Z",
            T0 + 960,
            "a shadow",
        )
        set_verdict(conn, "edge-01-bridge-000003", "confirmed", "duty", "2026-11-26T08:32:00.000Z", T0 + 1020)
        set_verdict(
            conn,
            "edge-01-bridge-000003",
            "false_alarm",
            "li",
            "2026-11-26T08:40:00.000Z",
            T0 + 1500,
            "only a bin bag",
        )


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/console.sqlite3")
        migrate(db)
        fill(db)
        db.close()
        raw = sqlite3.connect(f"{tmp}/console.sqlite3")
        (out / "console.sql").write_text("\n".join(raw.iterdump()) + "\n", encoding="utf-8")
        raw.close()
    pg = Postgres().start()
    try:
        url = pg.create_database()
        db = Database(url)
        migrate(db)
        fill(db)
        db.close()
        dump = subprocess.run(
            [str(pg.bin / "pg_dump"), "--inserts", "--no-owner", "--no-privileges", "--no-comments", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines = [ln for ln in dump.splitlines() if not ln.startswith("\\")]  # psql-only meta-commands
        (out / "console-pg.sql").write_text("\n".join(lines) + "\n", encoding="utf-8")
    finally:
        pg.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
