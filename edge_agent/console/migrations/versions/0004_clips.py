"""Evidence clips and owner crops.

- clips: one row per event whose event names a clip (`clip` of the event: sha256, chunks,
  bytes, duration_s); `data` holds the MP4 once every chunk has come and the joined bytes
  hash to the event's sha256 (`complete`); `sha256_ok` is false while the joined chunks do
  not match; `purged_at` once retention emptied `data`.
- clip_chunks: the chunks of clips not yet complete, by (event_id, idx); a complete clip's
  chunks are deleted once it is put together.
- owner_crops: the JPEG of a left object's owner (`snapshots/{event_id}/owner`), like the
  snapshots table.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clips",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("device", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("duration_s", sa.Double),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("sha256_ok", sa.Boolean),
        sa.Column("data", sa.LargeBinary),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("completed_at", sa.Double),
        sa.Column("purged_at", sa.Double),
    )
    op.create_table(
        "clip_chunks",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("device", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
    )
    op.create_index("clip_chunks_received", "clip_chunks", ["received_at"])
    op.create_table(
        "owner_crops",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("device", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("jpeg", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("purged_at", sa.Double),
    )


def downgrade() -> None:
    raise NotImplementedError("the console's migrations only go forward")
