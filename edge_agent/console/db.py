"""The two engines behind one SQLAlchemy Engine: SQLite (embedded, the default) and PostgreSQL.

Reads and writes are SQLAlchemy Core (`console/tables.py`), so one statement
serves both engines. SQLite runs in WAL mode with `synchronous=FULL`: a commit
is on disk before the console acknowledges the message to the broker, so
neither a killed process nor a power cut loses an acknowledged event. A write
transaction on SQLite starts with `BEGIN IMMEDIATE`, taking the write lock at
once, so two writers never deadlock upgrading a read lock; a read takes none.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from edge_agent.core.config import redact

logger = logging.getLogger(__name__)

DialectName = Literal["sqlite", "postgresql"]
POOL_SIZE = 8
BUSY_TIMEOUT_S = 30.0
_BEGIN_OPTION = "edge_sqlite_begin"  # execution option: "IMMEDIATE" for write transactions


class DatabaseError(Exception):
    """The database cannot be reached or used; the message says which and why."""


def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors after which a retry of the same transaction may succeed (lost server, deadlock, busy).

    SQLAlchemy wraps the driver's errors: a lost connection, a deadlock or a
    serialization failure (psycopg's TransactionRollback) and SQLite's "database
    is locked" all arrive as `sqlalchemy.exc.OperationalError`.
    """
    errors: list[type[BaseException]] = [
        sa.exc.OperationalError,
        sa.exc.InterfaceError,
        sqlite3.OperationalError,
    ]
    try:
        import psycopg

        errors += [psycopg.OperationalError]
    except ImportError:
        pass
    return tuple(errors)


def sqlite_path(url: str) -> Path:
    """`sqlite:///ABS`, `sqlite:////ABS` or `sqlite:RELATIVE` -> the file's path."""
    rest = url.removeprefix("sqlite:")
    return Path(rest[2:] if rest.startswith("//") else rest)


def _engine_url(url: str, password: str | None) -> URL:
    if url.startswith("sqlite:"):
        return URL.create("sqlite+pysqlite", database=str(sqlite_path(url)))
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as err:
        raise DatabaseError(f"database.url {redact(url)!r} is not a URL: {err}") from err
    parsed = parsed.set(drivername="postgresql+psycopg")
    if password is not None:
        parsed = parsed.set(password=password)
    return parsed


class Database:
    """One database: `with db.connection() as c` to read, `with db.transaction() as c` to write."""

    def __init__(self, url: str, password: str | None = None, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.shown = redact(url)
        self.dialect_name: DialectName = "sqlite" if url.startswith("sqlite:") else "postgresql"
        self.path: Path | None = sqlite_path(url) if self.dialect_name == "sqlite" else None
        target = _engine_url(url, password)
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.engine: Engine = sa.create_engine(
                    target,
                    pool_size=pool_size,
                    connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
                )
                _sqlite_events(self.engine)
            else:
                self.engine = sa.create_engine(
                    target,
                    pool_size=pool_size,
                    pool_pre_ping=True,
                    connect_args={"connect_timeout": 10, "application_name": "edge-agent-console"},
                )
        except ImportError as err:
            raise DatabaseError(
                "PostgreSQL needs the psycopg package: pip install 'edge-agent[console]'"
            ) from err
        except OSError as err:
            raise DatabaseError(f"cannot open the SQLite database {self.path}: {err}") from err

    def _connect(self) -> Connection:
        # Errors stay SQLAlchemy's: the ingest retries the transient ones (`transient_errors`),
        # and `describe` turns one into a line for the operator. `preserve_rowcount`: the writes
        # tell a new row from a duplicate by the rowcount of `INSERT ... ON CONFLICT DO NOTHING`,
        # which SQLAlchemy otherwise keeps only for UPDATE and DELETE (psycopg's reads -1).
        return self.engine.connect().execution_options(preserve_rowcount=True)

    def describe(self, err: BaseException) -> str:
        """One line for the operator about a database error, without SQLAlchemy's boilerplate."""
        what = f"the SQLite database {self.path}" if self.path else self.shown
        detail = err.orig if isinstance(err, sa.exc.DBAPIError) and err.orig is not None else err
        lines = redact(str(detail)).strip().splitlines()
        return f"{what}: {lines[0] if lines else type(detail).__name__}"

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for reads; whatever transaction it opened is rolled back at the end."""
        with self._connect() as conn:
            yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends (before the caller goes on, e.g. to
        acknowledge what it stored), rolled back on an exception."""
        with self._connect() as conn:
            conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_events(engine: Engine) -> None:
    """pysqlite's own transaction handling is off; each transaction starts with our BEGIN."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
