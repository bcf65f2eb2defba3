"""Retention: rows older than `retention.days` per kind are deleted, by a background thread.

What each kind means and what stays:
- events: closed incidents (resolved or false alarm) that started before the
  cut go with their phases, audit trail and snapshot. An open incident is
  never deleted, however old.
- snapshots: only the JPEG goes (emptied, `purged_at` set); the incident keeps
  its facts and knows its picture was purged. Open incidents keep theirs. The
  owner crop of a left object goes with them, the same way.
- clips: the MP4 goes (emptied, `purged_at` set), the clip's facts stay; open
  incidents keep theirs. Chunks of a clip that never became complete go too.
- stats, status: older rows go, but the newest row of each box (and camera)
  stays, so the health board never forgets a quiet box.
- counts, rejected, refused: older rows go.
A purge works in chunks, each its own short transaction, so the ingest waits
for the SQLite write lock at most one chunk long. Every row deleted is counted
per kind in `purged` (shown by /api/status).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_agent.console import tables as t
from edge_agent.console.db import Database, transient_errors
from edge_agent.console.store import insert

logger = logging.getLogger(__name__)

DAY_S = 86400.0
DEFAULT_DAYS: dict[str, float] = {
    "events": 365,
    "snapshots": 90,
    "clips": 30,
    "stats": 30,
    "status": 90,
    "counts": 730,
    "rejected": 30,
    "refused": 365,
}
KINDS = tuple(DEFAULT_DAYS)
CHUNK = 1000


def _keep_newest(table: sa.Table, keys: list[str]) -> Any:
    """The ids of each key's newest row, which stay whatever their age."""
    return sa.select(sa.func.max(table.c.id)).group_by(*[table.c[k] for k in keys])


def _ids(conn: Connection, stmt: Any, limit: int | None) -> list[Any]:
    return list(conn.execute(stmt.limit(limit) if limit else stmt).scalars())


def _delete_ids(conn: Connection, table: sa.Table, col: str, ids: list[Any]) -> int:
    done = 0
    for i in range(0, len(ids), CHUNK):
        done += conn.execute(sa.delete(table).where(table.c[col].in_(ids[i : i + CHUNK]))).rowcount
    return done


def _empty(
    conn: Connection, table: sa.Table, column: str, empty: Any, cut: float, now: float, limit: int | None
) -> int:
    """Empty `column` of the rows received before `cut` whose incident is not open."""
    open_ids = sa.select(t.incidents.c.event_id).where(t.incidents.c.state.in_(t.OPEN_STATES))
    c = table.c
    ids = _ids(
        conn,
        sa.select(c.event_id)
        .where(c.received_at < cut, c.purged_at.is_(None), c.event_id.not_in(open_ids))
        .order_by(c.received_at),
        limit,
    )
    done = 0
    for i in range(0, len(ids), CHUNK):
        done += conn.execute(
            sa.update(table)
            .where(c.event_id.in_(ids[i : i + CHUNK]))
            .values({column: empty, "purged_at": now})
        ).rowcount
    return done


def _purge_kind(conn: Connection, kind: str, cut: float, now: float, limit: int | None) -> int:
    closed = t.incidents.c.state.not_in(t.OPEN_STATES)
    if kind == "events":
        inc = t.incidents
        ids = _ids(
            conn,
            sa.select(inc.c.event_id).where(inc.c.started_epoch < cut, closed).order_by(inc.c.started_epoch),
            limit,
        )
        for table in (t.events, t.incident_audit, t.snapshots, t.owner_crops, t.clips, t.clip_chunks):
            _delete_ids(conn, table, "event_id", ids)
        return _delete_ids(conn, inc, "event_id", ids)
    if kind == "snapshots":
        done = _empty(conn, t.snapshots, "jpeg", b"", cut, now, limit)
        _empty(conn, t.owner_crops, "jpeg", b"", cut, now, limit)
        return done
    if kind == "clips":
        done = _empty(conn, t.clips, "data", None, cut, now, limit)
        ch = t.clip_chunks
        conn.execute(sa.delete(ch).where(ch.c.received_at < cut))
        return done
    if kind in ("stats", "status"):
        tables = (
            [(t.stats, ["site", "device"])]
            if kind == "stats"
            else [(t.device_status, ["site", "device"]), (t.camera_status, ["site", "device", "camera"])]
        )
        done = 0
        for table, keys in tables:
            newest = _keep_newest(table, keys)
            ids = _ids(
                conn,
                sa.select(table.c.id)
                .where(table.c.received_at < cut, table.c.id.not_in(newest))
                .order_by(table.c.id),
                limit,
            )
            done += _delete_ids(conn, table, "id", ids)
        return done
    if kind in ("counts", "rejected"):
        table = t.counts if kind == "counts" else t.rejected
        ids = _ids(conn, sa.select(table.c.id).where(table.c.received_at < cut).order_by(table.c.id), limit)
        return _delete_ids(conn, table, "id", ids)
    if kind == "refused":
        r = t.refused
        return int(conn.execute(sa.delete(r).where(r.c.last_at < cut)).rowcount)
    raise ValueError(f"retention.days: unknown kind {kind!r}; known: {', '.join(KINDS)}")


def purge(
    conn: Connection, days: Mapping[str, float | None], now: float, limit: int | None = None
) -> dict[str, int]:
    """Delete rows strictly older than `now - days[kind]` days, at most `limit` per kind (None: all).

    A kind missing from `days` or set to None is kept forever. Returns the rows
    deleted (for events: incidents; for snapshots: JPEGs emptied) per kind.
    """
    out: dict[str, int] = {}
    for kind, age in days.items():
        if age is None:
            continue
        if age <= 0:
            raise ValueError(f"retention.days.{kind}: expected a number of days above 0, got {age}")
        n = _purge_kind(conn, kind, now - float(age) * DAY_S, now, limit)
        out[kind] = n
        if n:
            stmt = insert(conn, t.purged).values(kind=kind, rows=n, last_at=now)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["kind"], set_={"rows": t.purged.c.rows + n, "last_at": now}
                )
            )
    return out


def _days_of(cfg: Any) -> dict[str, float | None]:
    """`retention.days` from the config: a mapping or an object with one attribute per kind."""
    days = getattr(cfg, "days", cfg)
    if isinstance(days, Mapping):
        return {k: (None if v is None else float(v)) for k, v in days.items()}
    return {k: getattr(days, k, DEFAULT_DAYS[k]) for k in KINDS}


class Purger:
    """Runs `purge` at start and every `retention.interval_s` in a thread; `start()`, `stop()`."""

    CHUNK_ROWS = 5000

    def __init__(self, db: Database, cfg: Any = None) -> None:
        self.db = db
        self.days = _days_of(cfg) if cfg is not None else dict(DEFAULT_DAYS)
        self.interval_s = float(getattr(cfg, "interval_s", 3600.0) or 3600.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_run: float | None = None
        self.last_result: dict[str, int] = {}
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="console-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run_once(self, now: float | None = None) -> dict[str, int]:
        """One full purge, chunk after chunk until nothing is left to delete."""
        now = time.time() if now is None else now
        total: dict[str, int] = {}
        while not self._stop.is_set():
            with self.db.transaction() as conn:
                done = purge(conn, self.days, now, limit=self.CHUNK_ROWS)
            for kind, n in done.items():
                total[kind] = total.get(kind, 0) + n
            if all(n < self.CHUNK_ROWS for n in done.values()):
                break
        self.last_run, self.last_result = now, total
        if any(total.values()):
            logger.info("retention: deleted %s", ", ".join(f"{k} {n}" for k, n in total.items() if n))
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
                self.last_error = None
            except transient_errors() as err:
                self.last_error = f"database {self.db.describe(err)}"
                logger.warning("retention: %s; trying again in %.0f s", self.last_error, self.interval_s)
            except Exception as err:
                self.last_error = str(err)
                logger.exception("retention failed; trying again in %.0f s", self.interval_s)
            self._stop.wait(self.interval_s)
