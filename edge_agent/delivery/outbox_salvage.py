"""Salvage of a damaged outbox: read every row that can still be read, row by row.

A power cut during a disk failure can damage a few pages of a large outbox.
Throwing the whole file away would lose every event it held, so before the
file is moved aside its readable rows are copied into the fresh outbox with
their ids (the order of delivery is kept).

How the rows are found: the `items_severity` index holds every row id and is
read first (it lives on its own pages, so damage to the table rarely reaches
it); each row is then read alone by id, so a damaged page costs the rows on
it, not the rows after it. When the index cannot be read, the table is walked
in id order and, past an unreadable stretch, probed id by id up to the
highest id known. SQLite's `.recover` would find a little more but needs the
`sqlite3` command-line tool, which a box may not have.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

_ROW = "SELECT id, topic, payload, qos, retain, camera, severity, created_at, size FROM items"
_SCAN_BATCH = 256
_MAX_PROBES = 2_000_000  # bounds the id-by-id walk of a table whose index is gone too


@dataclass
class Salvage:
    """What could be read from a damaged outbox."""

    rows: list[tuple[object, ...]] = field(default_factory=list)
    lost: int | None = 0  # rows known to exist that could not be read; None: unknown
    error: str | None = None  # why nothing at all could be read

    def lost_text(self) -> str:
        return "an unknown number" if self.lost is None else str(self.lost)

    def restore(self, conn: sqlite3.Connection) -> None:
        """Insert the saved rows into a fresh outbox, ids kept, in one transaction."""
        if not self.rows:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO items"
                " (id, topic, payload, qos, retain, camera, severity, created_at, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self.rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _valid(row: tuple[object, ...]) -> bool:
    """A row whose values have the types the outbox wrote (damage can change them)."""
    _id, topic, payload, qos, retain, _camera, severity, created_at, size = row
    return (
        isinstance(topic, str)
        and bool(topic)
        and isinstance(payload, bytes)
        and qos in (0, 1, 2)
        and retain in (0, 1)
        and severity in ("info", "warning", "alert")
        and isinstance(created_at, float)
        and isinstance(size, int)
    )


def salvage_rows(path: Path) -> Salvage:
    """Every readable, well-formed row of the outbox at `path` (which is left untouched)."""
    # Read-only first, so the damaged file stays as it was for inspection; a WAL
    # file left by a crash may need a writable open to be read at all.
    result = Salvage(lost=None, error="not opened")
    for uri in (f"file:{path}?mode=ro", f"file:{path}"):
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as err:
            result = Salvage(lost=None, error=str(err))
            continue
        try:
            return _salvage(conn)
        except sqlite3.Error as err:  # the schema itself cannot be read
            result = Salvage(lost=None, error=str(err))
        finally:
            conn.close()
    return result


def _salvage(conn: sqlite3.Connection) -> Salvage:
    ids = _ids_from_index(conn)
    if ids is not None:
        out = Salvage()
        for item_id in ids:
            row = _read_one(conn, item_id)
            if row is None:
                out.lost = (out.lost or 0) + 1
            else:
                out.rows.append(row)
        return out
    return _walk_table(conn)


def _ids_from_index(conn: sqlite3.Connection) -> list[int] | None:
    try:
        rows = conn.execute("SELECT id FROM items INDEXED BY items_severity").fetchall()
    except sqlite3.Error as err:
        logger.info("outbox salvage: the index cannot be read (%s); walking the table", err)
        return None
    return sorted({int(r[0]) for r in rows if isinstance(r[0], int)})


def _read_one(conn: sqlite3.Connection, item_id: int) -> tuple[object, ...] | None:
    try:
        row = conn.execute(f"{_ROW} WHERE id = ?", (item_id,)).fetchone()
    except sqlite3.Error:
        return None
    return tuple(row) if row is not None and _valid(tuple(row)) else None


def _highest_id(conn: sqlite3.Connection) -> int:
    for query in ("SELECT MAX(id) FROM items", "SELECT seq FROM sqlite_sequence WHERE name = 'items'"):
        try:
            row = conn.execute(query).fetchone()
        except sqlite3.Error:
            continue
        if row is not None and isinstance(row[0], int):
            return int(row[0])
    return 0


def _walk_table(conn: sqlite3.Connection) -> Salvage:
    """Rows in id order; past a damaged stretch, id by id up to the highest id known."""
    out = Salvage(lost=None)  # without the index the number of rows lost is not known
    highest = _highest_id(conn)
    cursor = 0
    probes = 0
    while True:
        try:
            batch = conn.execute(
                f"{_ROW} WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, _SCAN_BATCH),
            ).fetchall()
        except sqlite3.Error:
            batch = None
        if batch is not None:
            if not batch:
                return out
            for row in batch:
                if _valid(tuple(row)):
                    out.rows.append(tuple(row))
            cursor = int(batch[-1][0])
            continue
        # The batch after `cursor` is unreadable: step over it one id at a time.
        while cursor < highest and probes < _MAX_PROBES:
            cursor += 1
            probes += 1
            row = _read_one(conn, cursor)
            if row is not None:
                out.rows.append(row)
                break
        else:
            return out
