"""The two engines behind one small interface: SQLite (embedded, the default) and PostgreSQL.

SQL in this package is written once, with `?` placeholders and the syntax both
engines share (`INSERT ... ON CONFLICT`, `RETURNING`, `excluded.`); `Conn`
turns `?` into psycopg's `%s`. Connections come from a small pool so web
requests and the ingest writer never share one.

SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk before the
console acknowledges the message to the broker, so neither a killed process nor
a power cut loses an acknowledged event.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from edge_agent.core.config import redact

logger = logging.getLogger(__name__)

Engine = Literal["sqlite", "postgresql"]
POOL_SIZE = 8


class DatabaseError(Exception):
    """The database cannot be reached or used; the message says which and why."""


def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors after which a retry of the same transaction may succeed (lost server, deadlock, busy)."""
    errors: list[type[BaseException]] = [sqlite3.OperationalError]
    try:
        import psycopg

        errors += [psycopg.OperationalError, psycopg.errors.SerializationFailure]
    except ImportError:
        pass
    return tuple(errors)


class Conn:
    """One connection; `execute` takes `?` placeholders on both engines."""

    def __init__(self, raw: Any, engine: Engine) -> None:
        self.raw = raw
        self.engine = engine

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s") if self.engine == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.raw.cursor()
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.cursor().executemany(self._sql(sql), [tuple(r) for r in rows])

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def begin(self) -> None:
        """Open a write transaction (psycopg opens one by itself on the first statement)."""

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()

    @property
    def broken(self) -> bool:
        if self.engine == "postgresql":
            return bool(self.raw.closed or self.raw.broken)
        return False


class Database:
    """Opens connections to one database and lends them out (`with db.connection() as c`)."""

    def __init__(self, url: str, password: str | None = None, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.shown = redact(url)
        self.engine: Engine = "sqlite" if url.startswith("sqlite:") else "postgresql"
        self._password = password
        self._pool: queue.LifoQueue[Conn] = queue.LifoQueue(pool_size)
        self._lock = threading.Lock()
        if self.engine == "sqlite":
            rest = url.removeprefix("sqlite:")
            self.path: Path | None = Path(rest[2:] if rest.startswith("//") else rest)
        else:
            self.path = None

    def connect(self) -> Conn:
        """A new connection (not from the pool): the ingest writer keeps its own."""
        if self.engine == "sqlite":
            assert self.path is not None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                raw = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
                raw.execute("PRAGMA journal_mode=WAL")
                raw.execute("PRAGMA synchronous=FULL")
                raw.execute("PRAGMA foreign_keys=ON")
                # isolation_level=None is autocommit; `begin()` opens each write transaction
                # explicitly, and plain reads need none.
            except (OSError, sqlite3.Error) as err:
                raise DatabaseError(f"cannot open the SQLite database {self.path}: {err}") from err
            return _SqliteConn(raw, "sqlite")
        try:
            import psycopg
        except ImportError as err:
            raise DatabaseError(
                "PostgreSQL needs the psycopg package: pip install 'edge-agent[console]'"
            ) from err
        kwargs: dict[str, Any] = {"connect_timeout": 10, "application_name": "edge-agent-console"}
        if self._password is not None:
            kwargs["password"] = self._password
        try:
            pg = psycopg.connect(self.url, **kwargs)
        except psycopg.Error as err:
            raise DatabaseError(f"cannot connect to {self.shown}: {redact(str(err)).strip()}") from err
        return Conn(pg, "postgresql")

    @contextlib.contextmanager
    def connection(self) -> Iterator[Conn]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self.connect()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if ok and not conn.broken:
                conn.rollback()  # end any read transaction psycopg opened
                try:
                    self._pool.put_nowait(conn)
                except queue.Full:
                    conn.close()
            else:
                conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Conn]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        with self.connection() as conn:
            conn.begin()
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


class _SqliteConn(Conn):
    """SQLite in autocommit mode: `commit`/`rollback` end the transaction `begin` opened."""

    def begin(self) -> None:
        # Take the write lock at once, so two writers never deadlock upgrading a read lock.
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        with contextlib.suppress(Exception):
            if self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
