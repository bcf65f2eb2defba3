"""Alembic migrations of the console's database, applied in code at start (no alembic.ini).

The environment and the revisions live in `migrations/` next to this module
(`env.py`, `versions/NNNN_name.py`), found through the package's own path, so
an installed wheel migrates the same way as a checkout. Every pending revision
runs in one transaction: a crash mid-way leaves the database as it was. On
PostgreSQL an advisory lock makes concurrent starts of several console
instances wait for each other instead of racing on `CREATE TABLE`.

A database made by the first release has no `alembic_version` but a
`schema_migrations` table at version 1: it is stamped at revision 0001 (that
release's schema, unchanged) and upgraded in place from there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from edge_agent.console.db import Database, DatabaseError

logger = logging.getLogger(__name__)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin at every start

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the first release's schema
_ADVISORY_KEY = 0x6561676C  # "eagl": any fixed number shared by every console instance


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    found = script().get_current_head()
    assert found is not None
    return found


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _first_release_version(conn: Connection) -> int | None:
    """`schema_migrations`' newest version in a database without Alembic's table, else None."""
    names = set(sa.inspect(conn).get_table_names())
    if "alembic_version" in names or "schema_migrations" not in names:
        return None
    return int(conn.execute(sa.text("SELECT MAX(version) FROM schema_migrations")).scalar() or 0)


def migrate(db: Database) -> list[str]:
    """Apply every revision not applied yet; returns the revision ids applied now, oldest first."""
    scripts = script()
    newest = head()
    try:
        with db.transaction() as conn:
            if db.dialect_name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
            legacy = _first_release_version(conn)
            if legacy is not None:
                if legacy != 1:
                    raise DatabaseError(
                        f"the database {db.shown} is at schema version {legacy} of the first release's"
                        " migrations, which this console cannot upgrade (expected 1)"
                    )
                MigrationContext.configure(conn).stamp(scripts, BASELINE)
                logger.info("database %s: made by the first release; stamped at %s", db.shown, BASELINE)
            before = current(conn)
            if before is not None and before != newest:
                try:
                    scripts.get_revision(before)
                except CommandError as err:
                    raise DatabaseError(
                        f"the database {db.shown} is at schema revision {before}, newer than this"
                        f" console knows ({newest}): upgrade edge-agent"
                    ) from err
            todo = [r.revision for r in scripts.iterate_revisions(newest, before)]
            todo.reverse()
            if todo:
                command.upgrade(_config(conn), "head")
                for rev in todo:
                    logger.info("database %s: applied migration %s", db.shown, rev)
    except sa.exc.SQLAlchemyError as err:
        raise DatabaseError(f"cannot migrate {db.describe(err)}") from err
    return todo
