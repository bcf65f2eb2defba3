"""The durable outbox: every event and snapshot waits here until the broker's PUBACK.

One SQLite database in WAL mode. The row id is the global order: the publisher
sends in id order and, after a reconnect, starts again from the oldest row not
yet acknowledged, so the order per camera holds across outages, crashes and
reboots. Duplicates are possible (an item whose PUBACK was lost is sent again)
and the platform removes them by `event_id`; losses are not.

Durability: a put is committed with `synchronous=FULL` before it returns, so an
event the pipeline handed over survives SIGKILL and power loss (WAL with
NORMAL survives a killed process but may lose the last commits on power loss).
Acks are committed with `synchronous=NORMAL`: losing an ack to a power cut only
means that item is sent once more, which at-least-once delivery allows, and it
keeps the backlog drain free of one fsync per message.

The size cap counts the bytes of topics and payloads. When a put takes the
total over `max_mb`, the oldest `info` items are dropped first, then the oldest
of the rest; each drop is counted per severity and logged.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "alert")
_SCHEMA_VERSION = 1
_DROP_BATCH = 256
_DROP_LOG_INTERVAL_S = 60.0
_COLUMNS = ("id", "topic", "payload", "qos", "retain", "camera", "severity", "created_at", "size")

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
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_severity ON items (severity, id);
"""


class OutboxError(Exception):
    """The outbox database cannot be used (disk full, read-only, damaged while running)."""


@dataclass(frozen=True)
class OutboxMessage:
    """One message to put into the outbox."""

    topic: str
    payload: bytes
    camera: str | None = None
    severity: str = "warning"
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True)
class OutboxItem:
    """One message waiting in the outbox; `id` is its place in the global order."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    camera: str | None
    severity: str
    created_at: float
    size: int


def _check(msg: OutboxMessage) -> None:
    if msg.severity not in SEVERITIES:
        raise ValueError(f"outbox: severity must be one of {SEVERITIES}, got {msg.severity!r}")
    if msg.qos not in (0, 1, 2):
        raise ValueError(f"outbox: qos must be 0, 1 or 2, got {msg.qos!r}")
    if not msg.topic:
        raise ValueError("outbox: empty topic")


class Outbox:
    """A durable FIFO of MQTT messages; thread-safe (one connection behind one lock)."""

    def __init__(self, path: str | os.PathLike[str], max_mb: float = 256.0) -> None:
        if max_mb <= 0:
            raise ValueError(f"outbox: max_mb must be > 0, got {max_mb}")
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.dropped_total = 0
        self.dropped_by_severity: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        self.recovered_corrupt = False
        self.corrupt_moved_to: Path | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._closed = False
        self._drops_unlogged: dict[str, int] = {}
        self._last_drop_log: float | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._open_or_recover()
        row = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items").fetchone()
        self._depth = int(row[0])
        self._size = int(row[1])
        if self._depth:
            logger.info("outbox %s holds %d items (%d bytes) from before; they go first", self.path, *row)

    # --- opening -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            result = conn.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {result[0] if result else 'no answer'}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"unknown outbox schema version {version}")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(items)"))
            if columns != _COLUMNS:
                raise sqlite3.DatabaseError(f"unexpected outbox table layout {columns}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_or_recover(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.OperationalError as err:
            # Locked, unreadable, no space, no such directory: the file may be fine.
            raise OutboxError(f"cannot open the outbox {self.path}: {err}") from err
        except sqlite3.DatabaseError as err:
            # Not a database, malformed image, failed integrity check.
            first_error = err
        # A damaged file must not stop the agent for good (a crash loop would lose
        # every new event too): keep it for inspection and start an empty outbox.
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moved = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while moved.exists():
            moved = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm", "-journal"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                try:
                    src.replace(Path(f"{moved}{suffix}"))
                except OSError as err:
                    raise OutboxError(f"cannot move the damaged outbox {src} aside: {err}") from err
        logger.error(
            "outbox %s is damaged (%s); moved it to %s and started an empty outbox: "
            "the messages it held are lost unless recovered by hand",
            self.path,
            first_error,
            moved,
        )
        self.recovered_corrupt = True
        self.corrupt_moved_to = moved
        try:
            return self._connect()
        except sqlite3.DatabaseError as err:
            raise OutboxError(f"cannot create a new outbox at {self.path}: {err}") from err

    # --- writing -----------------------------------------------------------------

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        camera: str | None = None,
        severity: str = "warning",
        qos: int = 1,
        retain: bool = False,
    ) -> int:
        """Store one message durably; returns its id once committed."""
        return self.put_many([OutboxMessage(topic, payload, camera, severity, qos, retain)])[0]

    def put_many(self, messages: Sequence[OutboxMessage]) -> list[int]:
        """Store messages in one transaction (all or none); returns their ids in order."""
        for msg in messages:
            _check(msg)
        if not messages:
            return []
        now = time.time()
        ids: list[int] = []
        with self._lock:
            self._ensure_open()
            added = 0
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for msg in messages:
                    size = len(msg.topic.encode("utf-8")) + len(msg.payload)
                    cur = self._conn.execute(
                        "INSERT INTO items (topic, payload, qos, retain, camera, severity, created_at, size)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            msg.topic,
                            msg.payload,
                            msg.qos,
                            int(msg.retain),
                            msg.camera,
                            msg.severity,
                            now,
                            size,
                        ),
                    )
                    ids.append(int(cur.lastrowid or 0))
                    added += size
                drops = self._enforce_cap(self._size + added)
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(
                    f"outbox {self.path}: cannot store {len(messages)} message(s): {err}"
                ) from err
            self._depth += len(messages)
            self._size += added
            self._apply_drops(drops)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
        return ids

    def _enforce_cap(self, total: int) -> list[tuple[int, str, int]]:
        """Delete the oldest info items, then the oldest of the rest, until under the cap."""
        drops: list[tuple[int, str, int]] = []
        if total <= self.max_bytes:
            return drops
        for where in ("WHERE severity = 'info'", ""):
            while total > self.max_bytes:
                rows = self._conn.execute(
                    f"SELECT id, severity, size FROM items {where} ORDER BY id LIMIT ?",  # noqa: S608
                    (_DROP_BATCH,),
                ).fetchall()
                if not rows:
                    break
                for item_id, severity, size in rows:
                    if total <= self.max_bytes:
                        break
                    self._conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
                    drops.append((int(item_id), str(severity), int(size)))
                    total -= int(size)
        return drops

    def _apply_drops(self, drops: list[tuple[int, str, int]]) -> None:
        if not drops:
            return
        for _, severity, size in drops:
            self._depth -= 1
            self._size -= size
            self.dropped_by_severity[severity] = self.dropped_by_severity.get(severity, 0) + 1
            self._drops_unlogged[severity] = self._drops_unlogged.get(severity, 0) + 1
        self.dropped_total += len(drops)
        # Once full, every put drops something: one line a minute tells the story
        # without flooding the log of a box that stays offline for days.
        now = time.monotonic()
        if self._last_drop_log is not None and now - self._last_drop_log < _DROP_LOG_INTERVAL_S:
            return
        self._last_drop_log = now
        logger.warning(
            "outbox %s is over its cap of %d bytes: dropped the oldest item(s) (%s since the last report), "
            "%d dropped in all; the info items go first",
            self.path,
            self.max_bytes,
            ", ".join(f"{n} {sev}" for sev, n in sorted(self._drops_unlogged.items())),
            self.dropped_total,
        )
        self._drops_unlogged.clear()

    def ack(self, item_id: int) -> bool:
        """Remove one delivered item; False if it was no longer there (dropped or acked)."""
        return self.ack_many([item_id]) == 1

    def ack_many(self, item_ids: Iterable[int]) -> int:
        """Remove delivered items in one transaction; returns how many were still there."""
        ids = list(item_ids)
        if not ids:
            return 0
        with self._lock:
            self._ensure_open()
            removed = 0
            freed = 0
            try:
                # Acks may be lost to a power cut: the item is then sent again (see module doc).
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute("BEGIN IMMEDIATE")
                for item_id in ids:
                    row = self._conn.execute(
                        "DELETE FROM items WHERE id = ? RETURNING size", (item_id,)
                    ).fetchone()
                    if row is not None:
                        removed += 1
                        freed += int(row[0])
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"outbox {self.path}: cannot remove delivered items: {err}") from err
            finally:
                self._set_full_sync()
            self._depth -= removed
            self._size -= freed
            return removed

    # --- reading -----------------------------------------------------------------

    def peek(self, limit: int, after_id: int = 0) -> list[OutboxItem]:
        """The oldest `limit` items with an id above `after_id`, in id order."""
        with self._lock:
            self._ensure_open()
            try:
                rows = self._conn.execute(
                    "SELECT id, topic, payload, qos, retain, camera, severity, created_at, size"
                    " FROM items WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: cannot read: {err}") from err
        return [
            OutboxItem(
                int(r[0]),
                str(r[1]),
                bytes(r[2]),
                int(r[3]),
                bool(r[4]),
                r[5],
                str(r[6]),
                float(r[7]),
                int(r[8]),
            )
            for r in rows
        ]

    def depth(self) -> int:
        """Items waiting for their PUBACK."""
        with self._lock:
            return self._depth

    def size_bytes(self) -> int:
        """Bytes of topics and payloads waiting (what `max_mb` caps)."""
        with self._lock:
            return self._size

    def oldest_age_s(self) -> float | None:
        """Seconds since the oldest waiting item was stored (wall clock: it may predate this process)."""
        with self._lock:
            self._ensure_open()
            row = self._conn.execute("SELECT created_at FROM items ORDER BY id LIMIT 1").fetchone()
        return None if row is None or row[0] is None else max(0.0, time.time() - float(row[0]))

    def counters(self) -> dict[str, object]:
        """The outbox part of the stats payload."""
        with self._lock:
            depth, size = self._depth, self._size
            dropped = dict(self.dropped_by_severity)
            total = self.dropped_total
        return {
            "depth": depth,
            "bytes": size,
            "max_bytes": self.max_bytes,
            "dropped_total": total,
            "dropped_by_severity": dropped,
            "recovered_corrupt": self.recovered_corrupt,
            "oldest_age_s": None if depth == 0 else _round(self.oldest_age_s()),
        }

    # --- notification and lifetime -----------------------------------------------

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (from the putting thread, after commit) whenever items are added."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as err:
                logger.error("outbox %s: rollback failed: %s", self.path, err)

    def _set_full_sync(self) -> None:
        try:
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as err:
            raise OutboxError(f"outbox {self.path}: cannot restore synchronous=FULL: {err}") from err


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
