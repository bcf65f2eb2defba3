"""The durable outbox: every event and snapshot waits here until it is delivered.

Delivered means the broker's PUBACK, or, while the box waits for receipts
(`mqtt.receipts`), the platform's receipt after it: items the broker has
acknowledged stay here, count against `max_mb` and are dropped by the same
policy as the others when the cap is reached.

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

Two lanes: events, snapshots and everything else in lane 0, clip chunks in lane 1
(`LANE_CLIPS`). The publisher sends lane 0 first and a clip chunk only when
nothing of lane 0 waits to be sent, so an alert stored after a clip's chunks
still goes before them; within a lane the row id is the order.

The size cap counts the bytes of topics and payloads. When a put takes the
total over `max_mb`, the oldest clip chunks are dropped first (the clip is the
bulkiest and least urgent evidence: the event and its snapshot stay), then the
oldest `info` items, then the oldest of the rest; each drop is counted (clip
chunks apart, the others per severity) and logged.

Poison messages: an item the client or the broker refuses for its own content
(an illegal topic, too large, not authorised) is moved by the publisher into
the `dead_letters` table of the same file (`dead_letter()`), with the reason and
the number of tries, so it never blocks the items behind it and stays there for
inspection (`sqlite3 outbox.sqlite3 'SELECT id, topic, reason FROM dead_letters'`).

Disk space: the WAL is bounded (`journal_size_limit`) and truncated after the
outbox drains (`wal_checkpoint(TRUNCATE)`), and new files are made with
`auto_vacuum=INCREMENTAL` so the free pages of a drained backlog go back to the
file system. The file, its WAL and the directory the outbox makes are private
(0600, 0700) whatever the umask: events name places and people.

A damaged file is salvaged (`outbox_salvage.py`) before it is moved aside: every
readable row goes into the fresh outbox with its id, so order is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_agent.core.files import private_dir
from edge_agent.delivery.outbox_file import OutboxError, open_outbox
from edge_agent.delivery.outbox_salvage import Salvage

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "alert")
LANE_MAIN = 0  # events, snapshots, counts: in id order
LANE_CLIPS = 1  # clip chunks: sent when nothing of the main lane waits, dropped first
# Free disk space a put may not take: room to write acks (a delete writes to the WAL), so a
# backlog stored on a filling disk can always drain. The evidence store's reserve is larger.
DEFAULT_RESERVE_MB = 4.0
_CHECKPOINT_EVERY = 256  # acked items between passive checkpoints during a long drain
_DROP_BATCH = 256
_DROP_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True)
class OutboxMessage:
    """One message to put into the outbox."""

    topic: str
    payload: bytes
    camera: str | None = None
    severity: str = "warning"
    qos: int = 1
    retain: bool = False
    lane: int = LANE_MAIN


@dataclass(frozen=True)
class DeadLetter:
    """An item moved out of the queue because it was refused for its content."""

    id: int
    topic: str
    size: int
    camera: str | None
    severity: str
    reason: str
    tries: int
    dead_at: float


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
    lane: int = LANE_MAIN


def _check(msg: OutboxMessage) -> None:
    if msg.severity not in SEVERITIES:
        raise ValueError(f"outbox: severity must be one of {SEVERITIES}, got {msg.severity!r}")
    if msg.qos not in (0, 1, 2):
        raise ValueError(f"outbox: qos must be 0, 1 or 2, got {msg.qos!r}")
    if not msg.topic:
        raise ValueError("outbox: empty topic")
    if msg.lane not in (LANE_MAIN, LANE_CLIPS):
        raise ValueError(f"outbox: lane must be {LANE_MAIN} or {LANE_CLIPS}, got {msg.lane!r}")


class Outbox:
    """A durable FIFO of MQTT messages; thread-safe (one connection behind one lock)."""

    def __init__(
        self, path: str | os.PathLike[str], max_mb: float = 256.0, reserve_mb: float = DEFAULT_RESERVE_MB
    ) -> None:
        if max_mb <= 0:
            raise ValueError(f"outbox: max_mb must be > 0, got {max_mb}")
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.reserve_bytes = int(reserve_mb * 1024 * 1024)
        self.dropped_total = 0
        self.dropped_by_severity: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        self.dropped_clip_chunks = 0
        self.recovered_corrupt = False
        self.corrupt_moved_to: Path | None = None
        self.salvage: Salvage | None = None
        self.opened_exclusive = False
        self.dead_lettered = 0
        self._acked_since_checkpoint = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._closed = False
        self._drops_unlogged: dict[str, int] = {}
        self._last_drop_log: float | None = None
        private_dir(self.path.parent)
        opened = open_outbox(self.path)
        self._conn = opened.conn
        self.salvage = opened.salvage
        self.recovered_corrupt = opened.salvage is not None
        self.corrupt_moved_to = opened.moved_to
        self.opened_exclusive = opened.exclusive
        row = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items").fetchone()
        self._depth = int(row[0])
        self._size = int(row[1])
        self.dead_lettered = int(self._conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
        if self._depth:
            logger.info("outbox %s holds %d items (%d bytes) from before; they go first", self.path, *row)

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
        lane: int = LANE_MAIN,
    ) -> int:
        """Store one message durably; returns its id once committed."""
        return self.put_many([OutboxMessage(topic, payload, camera, severity, qos, retain, lane)])[0]

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
            self._check_room(messages)
            added = 0
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for msg in messages:
                    size = len(msg.topic.encode("utf-8")) + len(msg.payload)
                    cur = self._conn.execute(
                        "INSERT INTO items (topic, payload, qos, retain, camera, severity, created_at, size,"
                        " lane) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            msg.topic,
                            msg.payload,
                            msg.qos,
                            int(msg.retain),
                            msg.camera,
                            msg.severity,
                            now,
                            size,
                            msg.lane,
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

    def _check_room(self, messages: Sequence[OutboxMessage]) -> None:
        if self.reserve_bytes <= 0:
            return
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return  # cannot tell: let SQLite say
        # The put goes into the WAL, and the WAL's pages into the file when it is folded in.
        needed = sum(len(m.payload) + len(m.topic) for m in messages) * 2
        with contextlib.suppress(OSError):
            needed += os.path.getsize(f"{self.path}-wal")
        if free - needed < self.reserve_bytes:
            raise OutboxError(
                f"outbox {self.path}: cannot store {len(messages)} message(s): {free // 1024} KB free on the"
                f" disk, {self.reserve_bytes // 1024} KB are kept to deliver what is stored"
            )

    def _enforce_cap(self, total: int) -> list[tuple[int, str, int, int]]:
        """Delete the oldest clip chunks, then the oldest info items, then the oldest of the rest,
        until under the cap."""
        drops: list[tuple[int, str, int, int]] = []
        if total <= self.max_bytes:
            return drops
        for where in (f"WHERE lane = {LANE_CLIPS}", "WHERE severity = 'info'", ""):
            while total > self.max_bytes:
                rows = self._conn.execute(
                    f"SELECT id, severity, size, lane FROM items {where} ORDER BY id LIMIT ?",  # noqa: S608
                    (_DROP_BATCH,),
                ).fetchall()
                if not rows:
                    break
                for item_id, severity, size, lane in rows:
                    if total <= self.max_bytes:
                        break
                    self._conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
                    drops.append((int(item_id), str(severity), int(size), int(lane)))
                    total -= int(size)
        return drops

    def _apply_drops(self, drops: list[tuple[int, str, int, int]]) -> None:
        if not drops:
            return
        for _, severity, size, lane in drops:
            self._depth -= 1
            self._size -= size
            what = "clip chunk" if lane == LANE_CLIPS else severity
            if lane == LANE_CLIPS:
                self.dropped_clip_chunks += 1
            else:
                self.dropped_by_severity[severity] = self.dropped_by_severity.get(severity, 0) + 1
            self._drops_unlogged[what] = self._drops_unlogged.get(what, 0) + 1
        self.dropped_total += len(drops)
        # Once full, every put drops something: one line a minute tells the story
        # without flooding the log of a box that stays offline for days.
        now = time.monotonic()
        if self._last_drop_log is not None and now - self._last_drop_log < _DROP_LOG_INTERVAL_S:
            return
        self._last_drop_log = now
        logger.warning(
            "outbox %s is over its cap of %d bytes: dropped the oldest item(s) (%s since the last report), "
            "%d dropped in all; clip chunks go first, then the info items",
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
            self._acked_since_checkpoint += removed
            if self._depth == 0 or self._acked_since_checkpoint >= _CHECKPOINT_EVERY:
                self._checkpoint(truncate=self._depth == 0)
            return removed

    def _checkpoint(self, *, truncate: bool) -> None:
        """Give the space of delivered items back: fold the WAL in, release free pages.

        Without this a drained backlog leaves its WAL (and free pages) on a disk
        that may be full. A failure is logged, never raised: the acks are
        committed and the next checkpoint tries again.
        """
        self._acked_since_checkpoint = 0
        try:
            if truncate:
                self._conn.executescript("PRAGMA incremental_vacuum;")  # execute() frees one page
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            else:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as err:
            logger.warning("outbox %s: checkpoint failed (%s); retried after the next acks", self.path, err)

    def dead_letter(self, item_id: int, reason: str, tries: int) -> bool:
        """Move an item refused for its content into `dead_letters`; False if it was gone."""
        with self._lock:
            self._ensure_open()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                row = self._conn.execute(
                    "DELETE FROM items WHERE id = ? RETURNING"
                    " id, topic, payload, qos, retain, camera, severity, created_at, size",
                    (item_id,),
                ).fetchone()
                if row is not None:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*row, reason, tries, time.time()),
                    )
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"outbox {self.path}: cannot move item {item_id} aside: {err}") from err
            if row is None:
                return False
            self._depth -= 1
            self._size -= int(row[8])
            self.dead_lettered += 1
            return True

    def dead_letters(self) -> list[DeadLetter]:
        """The items moved aside, oldest first (their payloads stay in the file)."""
        with self._lock:
            self._ensure_open()
            rows = self._conn.execute(
                "SELECT id, topic, size, camera, severity, reason, tries, dead_at"
                " FROM dead_letters ORDER BY id"
            ).fetchall()
        return [
            DeadLetter(int(r[0]), str(r[1]), int(r[2]), r[3], str(r[4]), str(r[5]), int(r[6]), float(r[7]))
            for r in rows
        ]

    # --- reading -----------------------------------------------------------------

    def peek(self, limit: int, after_id: int = 0, lane: int | None = None) -> list[OutboxItem]:
        """The oldest `limit` items with an id above `after_id` (of `lane`; None: any), in id order."""
        sql = "SELECT id, topic, payload, qos, retain, camera, severity, created_at, size, lane FROM items"
        where, args = (" WHERE id > ?", (after_id, limit)) if lane is None else (
            " WHERE lane = ? AND id > ?", (lane, after_id, limit))  # fmt: skip
        with self._lock:
            self._ensure_open()
            try:
                rows = self._conn.execute(sql + where + " ORDER BY id LIMIT ?", args).fetchall()
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
                int(r[9]),
            )
            for r in rows
        ]

    def present(self, item_ids: Iterable[int]) -> set[int]:
        """Which of `item_ids` are still in the outbox (not acked, dropped or moved aside)."""
        ids = list(item_ids)
        found: set[int] = set()
        with self._lock:
            self._ensure_open()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                try:
                    rows = self._conn.execute(
                        f"SELECT id FROM items WHERE id IN ({marks})",  # noqa: S608
                        chunk,
                    ).fetchall()
                except sqlite3.Error as err:
                    raise OutboxError(f"outbox {self.path}: cannot read: {err}") from err
                found.update(int(r[0]) for r in rows)
        return found

    def depth(self) -> int:
        """Items waiting for their PUBACK, or for the platform's receipt after it."""
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
            clip_chunks = self.dropped_clip_chunks
            total = self.dropped_total
        return {
            "depth": depth,
            "bytes": size,
            "max_bytes": self.max_bytes,
            "dropped_total": total,
            "dropped_by_severity": dropped,
            "dropped_clip_chunks": clip_chunks,
            "recovered_corrupt": self.recovered_corrupt,
            "salvaged": None if self.salvage is None else len(self.salvage.rows),
            "salvage_lost": None if self.salvage is None else self.salvage.lost,
            "dead_lettered": self.dead_lettered,
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
