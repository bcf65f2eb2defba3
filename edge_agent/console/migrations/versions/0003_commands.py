"""Remote operations from the console: every command sent to a box, who sent it and its result.

- commands: one row per signed command (its id is the command's), the box, the action, its
  arguments (a config's passwords shown as `***`), who sent it and when, its state (`sent`
  until the box answers, then `applied`, `refused` or `rolled_back`, or `timeout`), the
  box's message and result data without the snapshot, which is kept in `jpeg`. A box's
  inventory is its newest applied `ping`.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("device", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("who", sa.Text, nullable=False),
        sa.Column("issued_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("deadline", sa.Double, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("data", sa.Text),
        sa.Column("jpeg", sa.LargeBinary),
        sa.Column("answered_at", sa.Double),
    )
    op.create_index("commands_device", "commands", ["site", "device", "issued_at"])


def downgrade() -> None:
    raise NotImplementedError("the console's migrations only go forward")
