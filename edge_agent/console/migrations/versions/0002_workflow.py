"""The incident workflow and its audit trail, refused messages, what boxes announce, retention.

- incidents: `state` (new, acknowledged, dispatched, resolved, false_alarm),
  assignee, acknowledged at/by, resolved at, state changed at; the first
  release's verdicts become states (confirmed -> resolved, false_alarm ->
  false_alarm), each verdict an `incident_audit` row, and `verdicts` with the
  incident's verdict columns goes.
- incident_audit: every state change and note.
- refused: messages over their size cap, counted per box and kind.
- devices gain site_name, timezone, lat, lon; cameras holds each camera's place.
- counts gain the interval's facts (read from the stored payloads);
  snapshots gain purged_at, rejected its original size; purged counts what
  retention deleted.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
VERDICT_STATE = {"confirmed": "resolved", "false_alarm": "false_alarm"}


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("incidents", sa.Column("state", sa.Text, nullable=False, server_default="new"))
    for name, col_type in (
        ("assignee", sa.Text),
        ("acknowledged_at", sa.Double),
        ("acknowledged_by", sa.Text),
        ("resolved_at", sa.Double),
        ("state_changed_at", sa.Double),
    ):
        op.add_column("incidents", sa.Column(name, col_type))
    op.create_index("incidents_state", "incidents", ["state", "started_epoch"])
    op.create_table(
        "incident_audit",
        sa.Column("id", ID, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("who", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("from_state", sa.Text),
        sa.Column("to_state", sa.Text),
        sa.Column("assignee", sa.Text),
        sa.Column("note", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("incident_audit_event", "incident_audit", ["event_id", "id"])
    _verdicts_to_states(bind)
    op.drop_table("verdicts")
    with op.batch_alter_table("incidents") as batch:
        for name in ("verdict", "verdict_by", "verdict_at"):
            batch.drop_column(name)

    op.create_table(
        "refused",
        sa.Column("site", sa.Text, primary_key=True),
        sa.Column("device", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("last_size", sa.BigInteger, nullable=False),
        sa.Column("first_at", sa.Double, nullable=False),
        sa.Column("last_at", sa.Double, nullable=False),
    )
    op.create_table(
        "purged",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("last_at", sa.Double, nullable=False),
    )
    for name, col_type in (
        ("site_name", sa.Text),
        ("timezone", sa.Text),
        ("lat", sa.Double),
        ("lon", sa.Double),
    ):
        op.add_column("devices", sa.Column(name, col_type))
    op.create_table(
        "cameras",
        sa.Column("site", sa.Text, primary_key=True),
        sa.Column("device", sa.Text, primary_key=True),
        sa.Column("camera", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("lat", sa.Double),
        sa.Column("lon", sa.Double),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.add_column("snapshots", sa.Column("purged_at", sa.Double))
    op.add_column("rejected", sa.Column("size", sa.Integer))
    op.create_index("rejected_received", "rejected", ["received_at"])
    op.create_index("snapshots_received", "snapshots", ["received_at"])
    facts: list[tuple[str, Any]] = [
        ("interval_start", sa.Text),
        ("interval_epoch", sa.Double),
        ("interval_s", sa.Double),
        ("complete", sa.Boolean),
        ("count", sa.Integer),
    ]
    for name, col_type in facts:
        op.add_column("counts", sa.Column(name, col_type))
    op.create_index("counts_interval", "counts", ["interval_epoch"])
    op.create_index("counts_received", "counts", ["received_at"])
    _count_facts(bind)
    bind.execute(
        sa.text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (2, 'alembic', :at)"),
        {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )


def _verdicts_to_states(bind: Any) -> None:
    """Each verdict given becomes an audit row; the latest sets the incident's state."""
    rows = bind.execute(
        sa.text("SELECT id, event_id, verdict, by_user, at, note FROM verdicts ORDER BY event_id, id")
    ).mappings()
    latest: dict[str, tuple[str, float]] = {}
    for row in rows:
        to_state = VERDICT_STATE.get(row["verdict"])
        if to_state is None:
            continue
        at = _epoch(row["at"])
        before = latest.get(row["event_id"], ("new", 0.0))[0]
        bind.execute(
            sa.text(
                "INSERT INTO incident_audit (event_id, at, who, action, from_state, to_state, note)"
                " VALUES (:event_id, :at, :who, 'state', :from_state, :to_state, :note)"
            ),
            {
                "event_id": row["event_id"],
                "at": at,
                "who": row["by_user"],
                "from_state": before,
                "to_state": to_state,
                "note": row["note"],
            },
        )
        latest[row["event_id"]] = (to_state, at)
    for event_id, (state, at) in latest.items():
        bind.execute(
            sa.text(
                "UPDATE incidents SET state = :state, state_changed_at = :at, resolved_at = :at"
                " WHERE event_id = :event_id"
            ),
            {"state": state, "at": at, "event_id": event_id},
        )


def _count_facts(bind: Any) -> None:
    """Pull interval, completeness and count out of every stored eagleeye.count/1 payload."""
    rows = bind.execute(sa.text("SELECT id, payload FROM counts")).all()
    for row_id, payload in rows:
        try:
            data = json.loads(payload)
            facts = {
                "interval_start": data["interval_start"],
                "interval_epoch": _epoch(data["interval_start"]),
                "interval_s": float(data["interval_s"]),
                "complete": bool(data["complete"]),
                "count": int(data["count"]),
                "id": row_id,
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # not an eagleeye.count/1: kept as received, left out of the count series
        bind.execute(
            sa.text(
                "UPDATE counts SET interval_start = :interval_start, interval_epoch = :interval_epoch,"
                " interval_s = :interval_s, complete = :complete, count = :count WHERE id = :id"
            ),
            facts,
        )


def downgrade() -> None:
    raise NotImplementedError("the console's migrations only go forward")
