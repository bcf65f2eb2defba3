"""Writes: a batch of parsed messages in one transaction, and the duty officer's verdicts.

Every write is idempotent, because at-least-once delivery re-sends and several
console instances may share the load: events, statuses, stats and counts are
inserted with `ON CONFLICT DO NOTHING` on their natural keys, and the incident
row is updated only by a phase seen for the first time. The incident update
does not depend on arrival order (the newest `ts` wins), so a batch is written
sorted by key: two instances touching the same incidents take their row locks
in the same order and never deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_agent.console.db import Conn
from edge_agent.console.records import (
    CameraStatusRecord,
    CountRecord,
    DeviceStatusRecord,
    EventRecord,
    Ignored,
    Record,
    Rejected,
    SnapshotRecord,
    StatsRecord,
    device_of,
)

VERDICTS = ("confirmed", "false_alarm")

_INSERT_EVENT = """
INSERT INTO events (event_id, phase, ts, ts_epoch, site, device, camera, rule, kind, severity,
                    topic, payload, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id, phase, ts) DO NOTHING
"""

# The newest phase (by ts; at equal ts end > update > start) sets what the incident looks like
# now; `end` closes it for good.
_RANK = "CASE {t}.last_phase WHEN 'end' THEN 2 WHEN 'update' THEN 1 ELSE 0 END"
_NEWER = (
    "(excluded.last_epoch > incidents.last_epoch OR (excluded.last_epoch = incidents.last_epoch"
    f" AND {_RANK.format(t='excluded')} >= {_RANK.format(t='incidents')}))"
)
_UPSERT_INCIDENT = """
INSERT INTO incidents (event_id, site, device, camera, rule, kind, severity, zone, label, score,
                       started_at, started_epoch, last_phase, last_ts, last_epoch, ended_at,
                       duration_s, phases, objects, snapshot_topic, snapshot_sha256,
                       first_received, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO UPDATE SET
    phases = incidents.phases + 1,
    severity = CASE WHEN @NEWER@
                    THEN excluded.severity ELSE incidents.severity END,
    label = CASE WHEN @NEWER@
                 THEN excluded.label ELSE incidents.label END,
    score = CASE WHEN @NEWER@
                 THEN excluded.score ELSE incidents.score END,
    objects = CASE WHEN @NEWER@
                   THEN excluded.objects ELSE incidents.objects END,
    duration_s = CASE WHEN @NEWER@
                      THEN excluded.duration_s ELSE incidents.duration_s END,
    last_phase = CASE WHEN @NEWER@
                      THEN excluded.last_phase ELSE incidents.last_phase END,
    last_ts = CASE WHEN @NEWER@
                   THEN excluded.last_ts ELSE incidents.last_ts END,
    last_epoch = CASE WHEN @NEWER@
                      THEN excluded.last_epoch ELSE incidents.last_epoch END,
    started_at = CASE WHEN excluded.started_epoch < incidents.started_epoch
                      THEN excluded.started_at ELSE incidents.started_at END,
    started_epoch = CASE WHEN excluded.started_epoch < incidents.started_epoch
                         THEN excluded.started_epoch ELSE incidents.started_epoch END,
    ended_at = COALESCE(incidents.ended_at, excluded.ended_at),
    snapshot_topic = COALESCE(incidents.snapshot_topic, excluded.snapshot_topic),
    snapshot_sha256 = COALESCE(incidents.snapshot_sha256, excluded.snapshot_sha256),
    updated_at = excluded.updated_at
""".replace("@NEWER@", _NEWER)


_HEARD = (
    "INSERT INTO devices (site, device, first_seen, last_seen) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (site, device) DO UPDATE SET last_seen = excluded.last_seen"
)
_REGISTERED = (
    "INSERT INTO devices (site, device, first_seen, last_seen) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (site, device) DO NOTHING"
)


@dataclass
class BatchResult:
    """What one batch added: new rows per kind; duplicates are the rest."""

    events: int = 0
    duplicates: int = 0
    snapshots: int = 0
    statuses: int = 0
    stats: int = 0
    counts: int = 0
    rejected: int = 0
    ignored: int = 0
    new_event_ids: list[str] = field(default_factory=list)


def _sort_key(record: Record) -> tuple[int, str]:
    if isinstance(record, EventRecord):
        e = record.event
        return 0, f"{e['event_id']}\0{e['ts']}\0{e['phase']}"
    if isinstance(record, SnapshotRecord):
        return 1, record.event_id
    return 2, ""


def write_batch(
    conn: Conn, records: Sequence[Record], received_at: float, retained: Sequence[bool] | None = None
) -> BatchResult:
    """Store `records` inside the caller's transaction; the caller commits.

    `retained[i]` marks a retained message: the broker's stored copy, replayed on
    every subscribe, says nothing about when its box was last heard from, so it
    registers the box but leaves `last_seen` alone.
    """
    result = BatchResult()
    heard: dict[tuple[str, str], bool] = {}  # (site, device) -> heard live in this batch
    flags = list(retained) if retained is not None else [False] * len(records)
    order = sorted(range(len(records)), key=lambda i: _sort_key(records[i]))
    for i in order:
        record = records[i]
        where = device_of(record)
        if where is not None:
            heard[where] = heard.get(where, False) or not flags[i]
        if isinstance(record, EventRecord):
            if _write_event(conn, record, received_at):
                result.events += 1
                result.new_event_ids.append(record.event["event_id"])
            else:
                result.duplicates += 1
        elif isinstance(record, SnapshotRecord):
            cur = conn.execute(
                "INSERT INTO snapshots (event_id, site, device, topic, sha256, size, jpeg, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                (record.event_id, record.site, record.device, record.topic, record.sha256,
                 len(record.jpeg), record.jpeg, received_at),
            )  # fmt: skip
            result.snapshots += cur.rowcount > 0
        elif isinstance(record, DeviceStatusRecord):
            cur = conn.execute(
                "INSERT INTO device_status (site, device, state, since, reason, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, state, since) DO NOTHING",
                (record.site, record.device, record.state, record.since, record.reason, received_at),
            )
            result.statuses += cur.rowcount > 0
        elif isinstance(record, CameraStatusRecord):
            cur = conn.execute(
                "INSERT INTO camera_status (site, device, camera, state, since, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, camera, state, since) DO NOTHING",
                (record.site, record.device, record.camera, record.state, record.since, received_at),
            )
            result.statuses += cur.rowcount > 0
        elif isinstance(record, StatsRecord):
            cur = conn.execute(
                "INSERT INTO stats (site, device, ts, outbox_depth, outbox_dropped, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, ts) DO NOTHING",
                (record.site, record.device, record.ts, record.outbox_depth, record.outbox_dropped,
                 record.payload, received_at),
            )  # fmt: skip
            result.stats += cur.rowcount > 0
        elif isinstance(record, CountRecord):
            cur = conn.execute(
                "INSERT INTO counts (site, device, camera, rule, payload, payload_sha256, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (site, device, camera, rule, payload_sha256) DO NOTHING",
                (record.site, record.device, record.camera, record.rule, record.payload,
                 record.payload_sha256, received_at),
            )  # fmt: skip
            result.counts += cur.rowcount > 0
        elif isinstance(record, Rejected):
            conn.execute(
                "INSERT INTO rejected (topic, error, payload, received_at) VALUES (?, ?, ?, ?)",
                (record.topic, record.error[:2000], record.payload, received_at),
            )
            result.rejected += 1
        elif isinstance(record, Ignored):
            result.ignored += 1
    for (site, device), live in sorted(heard.items()):
        conn.execute(_HEARD if live else _REGISTERED, (site, device, received_at, received_at))
    return result


def _write_event(conn: Conn, record: EventRecord, received_at: float) -> bool:
    """Insert one phase; True if it was new (then the incident row follows it)."""
    e = record.event
    cur = conn.execute(
        _INSERT_EVENT,
        (e["event_id"], e["phase"], e["ts"], record.ts_epoch, e["site"], e["device"], e["camera"],
         e["rule"], e["kind"], e["severity"], record.topic, record.payload, received_at),
    )  # fmt: skip
    if cur.rowcount <= 0:
        return False
    snap = e.get("snapshot") or {}
    conn.execute(
        _UPSERT_INCIDENT,
        (e["event_id"], e["site"], e["device"], e["camera"], e["rule"], e["kind"], e["severity"],
         e.get("zone"), e.get("label"), e.get("score"), e["started_at"], record.started_epoch,
         e["phase"], e["ts"], record.ts_epoch, e["ts"] if e["phase"] == "end" else None,
         float(e["duration_s"]), json.dumps(e["objects"], separators=(",", ":")),
         snap.get("topic"), snap.get("sha256"), received_at, received_at),
    )  # fmt: skip
    return True


def set_verdict(conn: Conn, event_id: str, verdict: str, by_user: str, at: str, now: float,
                note: str | None = None) -> bool:  # fmt: skip
    """Record a verdict (history row + the incident's latest); False if there is no such incident."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    cur = conn.execute(
        "UPDATE incidents SET verdict = ?, verdict_by = ?, verdict_at = ?, updated_at = ? WHERE event_id = ?",
        (verdict, by_user, at, now, event_id),
    )
    if cur.rowcount <= 0:
        return False
    conn.execute(
        "INSERT INTO verdicts (event_id, verdict, by_user, at, note) VALUES (?, ?, ?, ?, ?)",
        (event_id, verdict, by_user, at, note),
    )
    return True
