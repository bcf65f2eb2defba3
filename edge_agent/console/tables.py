"""The console's tables as SQLAlchemy Core objects: the schema at the newest migration.

The migrations (`migrations/versions/`) create and change the real tables; these
objects only describe the result for queries and writes, so they must follow
every new migration. Times are kept twice: the payload's RFC 3339 text and
seconds since the epoch (`*_epoch`, `*_at` floats) for sorting and filtering.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# The values of incidents.state (the workflow in `workflow.py`); the first three are open.
STATES = ("new", "acknowledged", "dispatched", "resolved", "false_alarm")
OPEN_STATES = ("new", "acknowledged", "dispatched")

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, sa.Identity(), primary_key=True)


# Every event phase, as received, once: unique on (event_id, phase, ts).
events = sa.Table(
    "events",
    metadata,
    _id(),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("phase", sa.Text, nullable=False),
    sa.Column("ts", sa.Text, nullable=False),
    sa.Column("ts_epoch", sa.Double, nullable=False),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("camera", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.UniqueConstraint("event_id", "phase", "ts", name="events_key"),
    sqlite_autoincrement=True,
)

# One row per incident: its lifecycle, the latest phase's facts and the duty officers' workflow.
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("camera", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("zone", sa.Text),
    sa.Column("label", sa.Text),
    sa.Column("score", sa.Double),
    sa.Column("started_at", sa.Text, nullable=False),
    sa.Column("started_epoch", sa.Double, nullable=False),
    sa.Column("last_phase", sa.Text, nullable=False),
    sa.Column("last_ts", sa.Text, nullable=False),
    sa.Column("last_epoch", sa.Double, nullable=False),
    sa.Column("ended_at", sa.Text),
    sa.Column("duration_s", sa.Double, nullable=False),
    sa.Column("phases", sa.Integer, nullable=False),
    sa.Column("objects", sa.Text, nullable=False),
    sa.Column("snapshot_topic", sa.Text),
    sa.Column("snapshot_sha256", sa.Text),
    sa.Column("first_received", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="new"),
    sa.Column("assignee", sa.Text),
    sa.Column("acknowledged_at", sa.Double),
    sa.Column("acknowledged_by", sa.Text),
    sa.Column("resolved_at", sa.Double),
    sa.Column("state_changed_at", sa.Double),
)

# Every workflow change and note: who, when, from which state to which.
incident_audit = sa.Table(
    "incident_audit",
    metadata,
    _id(),
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

# Snapshot JPEGs by event id; retention empties `jpeg` and sets `purged_at`, keeping the facts.
snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("jpeg", sa.LargeBinary, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("purged_at", sa.Double),
)

device_status = sa.Table(
    "device_status",
    metadata,
    _id(),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("since", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.UniqueConstraint("site", "device", "state", "since", name="device_status_key"),
    sqlite_autoincrement=True,
)

camera_status = sa.Table(
    "camera_status",
    metadata,
    _id(),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("camera", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("since", sa.Text, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.UniqueConstraint("site", "device", "camera", "state", "since", name="camera_status_key"),
    sqlite_autoincrement=True,
)

stats = sa.Table(
    "stats",
    metadata,
    _id(),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("ts", sa.Text, nullable=False),
    sa.Column("outbox_depth", sa.Integer),
    sa.Column("outbox_dropped", sa.Integer),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.UniqueConstraint("site", "device", "ts", name="stats_key"),
    sqlite_autoincrement=True,
)

# `count` rule aggregates as received, with the interval's facts pulled out (null for rows of
# the first release whose payload was not an eagleeye.count/1).
counts = sa.Table(
    "counts",
    metadata,
    _id(),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("camera", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("payload_sha256", sa.Text, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("interval_start", sa.Text),
    sa.Column("interval_epoch", sa.Double),
    sa.Column("interval_s", sa.Double),
    sa.Column("complete", sa.Boolean),
    sa.Column("count", sa.Integer),
    sa.UniqueConstraint("site", "device", "camera", "rule", "payload_sha256", name="counts_key"),
    sqlite_autoincrement=True,
)

# Every box seen, when it was last heard from, and what it announces about itself.
devices = sa.Table(
    "devices",
    metadata,
    sa.Column("site", sa.Text, primary_key=True),
    sa.Column("device", sa.Text, primary_key=True),
    sa.Column("first_seen", sa.Double, nullable=False),
    sa.Column("last_seen", sa.Double, nullable=False),
    sa.Column("site_name", sa.Text),
    sa.Column("timezone", sa.Text),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
)

# Cameras as their box announces them (latest announcement wins).
cameras = sa.Table(
    "cameras",
    metadata,
    sa.Column("site", sa.Text, primary_key=True),
    sa.Column("device", sa.Text, primary_key=True),
    sa.Column("camera", sa.Text, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# Messages that broke the contract, with the reason; the payload is cut to `limits.rejected_keep_bytes`.
rejected = sa.Table(
    "rejected",
    metadata,
    _id(),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("size", sa.Integer),
    sqlite_autoincrement=True,
)

# Messages over their size cap, acknowledged and not stored: counted per box and kind.
refused = sa.Table(
    "refused",
    metadata,
    sa.Column("site", sa.Text, primary_key=True),
    sa.Column("device", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("last_size", sa.BigInteger, nullable=False),
    sa.Column("first_at", sa.Double, nullable=False),
    sa.Column("last_at", sa.Double, nullable=False),
)

# Rows deleted by retention, per kind, since the database was made.
purged = sa.Table(
    "purged",
    metadata,
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("last_at", sa.Double, nullable=False),
)

# Every command sent to a box from the console: who, when, its state and the box's answer
# (`data` without the snapshot JPEG, which is in `jpeg`). States: COMMAND_STATES.
commands = sa.Table(
    "commands",
    metadata,
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
COMMAND_STATES = ("sent", "applied", "refused", "rolled_back", "timeout")

# Evidence clips by event id: the event's `clip` facts; `data` once complete (every chunk, the
# sha256 checked); `purged_at` once retention emptied it. Chunks wait in `clip_chunks`.
clips = sa.Table(
    "clips",
    metadata,
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

clip_chunks = sa.Table(
    "clip_chunks",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
)

# A left object's owner crop (JPEG) by event id, kept like the snapshots.
owner_crops = sa.Table(
    "owner_crops",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("jpeg", sa.LargeBinary, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("purged_at", sa.Double),
)
