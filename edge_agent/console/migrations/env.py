"""Alembic's environment for the console: run by `console/migrations.py` on a connection it opened.

There is no alembic.ini: `migrate()` builds the Config in code, points
`script_location` at this directory and hands over its connection (already in
a transaction, holding the advisory lock on PostgreSQL) as
`config.attributes["connection"]`. Every pending revision then runs inside that
one transaction, so a crash mid-way leaves the database as it was.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
