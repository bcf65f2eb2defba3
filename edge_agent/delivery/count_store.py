"""Count-rule state that survives a restart: SQLite beside the outbox.

Two tables: `running` holds the last checkpoint of each (camera, rule, interval) the agent
is counting, so a restarted agent resumes the interval it was in; `published` holds each
interval whose complete aggregate went into the outbox, so an interval is never published
complete twice (a restart that replays the same close, or two closes after a clock step).
The outbox itself (robust against crashes) delivers what was put in it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_agent.core.files import create_private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS running (
    camera TEXT NOT NULL, rule TEXT NOT NULL, interval_start REAL NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (camera, rule, interval_start)
);
CREATE TABLE IF NOT EXISTS published (
    camera TEXT NOT NULL, rule TEXT NOT NULL, interval_start REAL NOT NULL,
    PRIMARY KEY (camera, rule, interval_start)
);
"""

KEEP_S = 7 * 86400.0  # rows older than a week are dropped


class CountStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if not self.path.exists():  # private like the outbox beside it, whatever the umask
            os.close(create_private_file(self.path))
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def checkpoint(self, camera: str, rule: str, interval_start: float, state: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO running (camera, rule, interval_start, state) VALUES (?, ?, ?, ?)",
                (camera, rule, interval_start, json.dumps(dict(state), separators=(",", ":"))),
            )

    def resume(self, camera: str, rule: str, interval_start: float) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM running WHERE camera = ? AND rule = ? AND interval_start = ?",
                (camera, rule, interval_start),
            ).fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        return state if isinstance(state, dict) else None

    def claim(self, camera: str, rule: str, interval_start: float) -> bool:
        """Mark the interval published; False if it already was (then do not publish it again)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO published (camera, rule, interval_start) VALUES (?, ?, ?)",
                (camera, rule, interval_start),
            )
            claimed = cur.rowcount == 1
            if claimed:
                self._db.execute(
                    "DELETE FROM running WHERE camera = ? AND rule = ? AND interval_start <= ?",
                    (camera, rule, interval_start),
                )
                self._db.execute("DELETE FROM published WHERE interval_start < ?", (interval_start - KEEP_S,))
        return claimed

    def close(self) -> None:
        with self._lock:
            self._db.close()
