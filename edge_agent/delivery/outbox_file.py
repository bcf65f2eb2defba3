"""The outbox file: its schema, its pragmas, and how it is opened when something is wrong.

Opening is where the disk's troubles show first. A damaged file is salvaged
(`outbox_salvage.py`: every readable row kept, with its id) and moved aside; a
full disk, where SQLite cannot make its shared-memory file, is opened in
exclusive mode (the WAL index in this process) so the backlog can still be
sent. New files are private (0600: SQLite gives its WAL and shm files the
database's mode) and use `auto_vacuum=INCREMENTAL`, so a drain can give its
free pages back to the file system.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.core.files import FILE_MODE
from edge_agent.delivery.outbox_salvage import Salvage, salvage_rows

logger = logging.getLogger(__name__)

# 2: the dead_letters table (a version 1 file gains it on open); 3: items.lane (clip chunks)
_SCHEMA_VERSION = 3
# The WAL is folded into the file every 1 MB and truncated to 1 MB after a checkpoint: on a
# filling disk the space it takes (and the file's growth when it is folded in) stays small.
_WAL_LIMIT_BYTES = 1024 * 1024
_WAL_AUTOCHECKPOINT_PAGES = 256
_COLUMNS = ("id", "topic", "payload", "qos", "retain", "camera", "severity", "created_at", "size", "lane")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    camera TEXT,
    severity TEXT NOT NULL,
    created_at REAL NOT NULL,
    size INTEGER NOT NULL,
    lane INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS items_severity ON items (severity, id);
CREATE INDEX IF NOT EXISTS items_lane ON items (lane, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    camera TEXT,
    severity TEXT NOT NULL,
    created_at REAL NOT NULL,
    size INTEGER NOT NULL,
    reason TEXT NOT NULL,
    tries INTEGER NOT NULL,
    dead_at REAL NOT NULL
);
"""


class OutboxError(Exception):
    """The outbox database cannot be used (disk full, read-only, damaged while running)."""


@dataclass
class Opened:
    """An open outbox connection and how it was come by."""

    conn: sqlite3.Connection
    salvage: Salvage | None = None  # set when the file was damaged
    moved_to: Path | None = None  # where the damaged file went
    exclusive: bool = False  # opened on a full disk


def connect(path: Path, *, exclusive: bool = False) -> sqlite3.Connection:
    """Open (or create) the outbox file with its pragmas, checked; raises sqlite3 errors."""
    new = not path.exists() or path.stat().st_size == 0
    if not path.exists():
        # SQLite makes its WAL and shm files with the mode of the database file.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    os.chmod(path, FILE_MODE)
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        if exclusive:
            # No shared-memory file to create: the WAL index lives in this process.
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        if new:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only before the first table
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
        result = conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {result[0] if result else 'no answer'}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, 2, _SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"unknown outbox schema version {version}")
        if not _has_tables(conn):
            conn.executescript(_SCHEMA)
        if version != _SCHEMA_VERSION:  # written only when it changes: a full disk can still open
            if "lane" not in {r[1] for r in conn.execute("PRAGMA table_info(items)")}:
                conn.execute("ALTER TABLE items ADD COLUMN lane INTEGER NOT NULL DEFAULT 0")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(items)"))
        if columns != _COLUMNS:
            raise sqlite3.DatabaseError(f"unexpected outbox table layout {columns}")
    except BaseException:
        conn.close()
        raise
    return conn


def open_outbox(path: Path) -> Opened:
    """Open the outbox at `path`: salvaged and replaced when damaged, exclusive when the disk is full."""
    try:
        return Opened(connect(path))
    except OSError as err:
        raise OutboxError(f"cannot open the outbox {path}: {err.strerror or err}") from err
    except sqlite3.OperationalError as err:
        # Locked, unreadable, no space, no such directory: the file may be fine.
        if not _disk_full(path.parent):
            raise OutboxError(f"cannot open the outbox {path}: {err}") from err
        return _open_exclusive(path, err)
    except sqlite3.DatabaseError as err:
        # Not a database, malformed image, failed integrity check.
        first_error = err
    reason = str(first_error).splitlines()[0][:200] if str(first_error) else type(first_error).__name__
    # A damaged file must not stop the agent for good (a crash loop would lose
    # every new event too): read what can be read, keep the file for inspection
    # and start a fresh outbox with the rows saved.
    salvage = salvage_rows(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while moved.exists():
        moved = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("", "-wal", "-shm", "-journal"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            try:
                src.replace(Path(f"{moved}{suffix}"))
            except OSError as err:
                raise OutboxError(f"cannot move the damaged outbox {src} aside: {err}") from err
    try:
        conn = connect(path)
        salvage.restore(conn)
    except (OSError, sqlite3.DatabaseError) as err:
        raise OutboxError(f"cannot create a new outbox at {path}: {err}") from err
    logger.error(
        "outbox %s is damaged (%s); saved %d readable item(s) into a fresh outbox, lost %s; "
        "the damaged file is kept as %s",
        path,
        reason,
        len(salvage.rows),
        salvage.lost_text(),
        moved,
    )
    return Opened(conn, salvage=salvage, moved_to=moved)


def _open_exclusive(path: Path, first: sqlite3.OperationalError) -> Opened:
    """The disk is full: no room for the shared-memory file, so keep the WAL index in memory.

    The backlog can then still be sent (its acks wait in the publisher's memory and
    new events in the sink's) until space returns; other programs cannot read the
    file until the next start.
    """
    try:
        conn = connect(path, exclusive=True)
    except (OSError, sqlite3.Error) as err:
        raise OutboxError(f"cannot open the outbox {path}: {first}; the disk is full") from err
    logger.error(
        "the disk under the outbox %s is full: opened it in exclusive mode (other programs cannot read it"
        " until the next start); what it holds is sent, new events wait in memory until space returns",
        path,
    )
    return Opened(conn, exclusive=True)


def _has_tables(conn: sqlite3.Connection) -> bool:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"items", "dead_letters"} <= names


def _disk_full(directory: Path) -> bool:
    """Too little space left to make SQLite's side files (the WAL and its 32 KB index)."""
    try:
        return shutil.disk_usage(directory).free < 256 * 1024
    except OSError:
        return False
