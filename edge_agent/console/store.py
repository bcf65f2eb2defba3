"""Writes of the ingest: a batch of parsed messages in one transaction (the caller commits).

Every write is idempotent, because at-least-once delivery re-sends and several
console instances may share the load: events, statuses, stats and counts are
inserted with `ON CONFLICT DO NOTHING` on their natural keys, and the incident
row is updated only by a phase seen for the first time. The incident update
does not depend on arrival order (the newest `ts` wins), so a batch is written
sorted by key: two instances touching the same incidents take their row locks
in the same order and never deadlock.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from edge_agent.console import evidence
from edge_agent.console import tables as t
from edge_agent.console.announcement import Announcement
from edge_agent.console.records import (
    CameraStatusRecord,
    ClipChunkRecord,
    CommandResultRecord,
    CountRecord,
    DeviceStatusRecord,
    EventRecord,
    Ignored,
    OwnerCropRecord,
    Record,
    Refused,
    Rejected,
    SnapshotRecord,
    StatsRecord,
    device_of,
)
from edge_agent.contract.commands import CommandResult
from edge_agent.core.config import redact


def insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows `ON CONFLICT` (both engines spell it the same)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _rank(cols: Any) -> Any:
    """At equal `ts`: end > update > start."""
    return sa.case({"end": 2, "update": 1}, value=cols.last_phase, else_=0)


def _incident_upsert(stmt: Any) -> Any:
    inc = t.incidents
    ex = stmt.excluded
    # The newest phase (by ts; at equal ts end > update > start) sets what the incident looks like
    # now; `end` closes it for good.
    newer = sa.or_(
        ex.last_epoch > inc.c.last_epoch,
        sa.and_(ex.last_epoch == inc.c.last_epoch, _rank(ex) >= _rank(inc.c)),
    )
    follow = ("severity", "label", "score", "objects", "duration_s", "last_phase", "last_ts", "last_epoch")
    set_: dict[str, Any] = {name: sa.case((newer, ex[name]), else_=inc.c[name]) for name in follow}
    earlier = ex.started_epoch < inc.c.started_epoch
    set_.update(
        phases=inc.c.phases + 1,
        started_at=sa.case((earlier, ex.started_at), else_=inc.c.started_at),
        started_epoch=sa.case((earlier, ex.started_epoch), else_=inc.c.started_epoch),
        ended_at=sa.func.coalesce(inc.c.ended_at, ex.ended_at),
        snapshot_topic=sa.func.coalesce(inc.c.snapshot_topic, ex.snapshot_topic),
        snapshot_sha256=sa.func.coalesce(inc.c.snapshot_sha256, ex.snapshot_sha256),
        updated_at=ex.updated_at,
    )
    return stmt.on_conflict_do_update(index_elements=["event_id"], set_=set_)


@functools.cache
def _statements(dialect: str) -> dict[str, Any]:
    """The ingest's statements, built once per engine and run with each row's parameters: building
    a Core statement per row costs more than running it."""
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    heard, refused, place = ins(t.devices), ins(t.refused), ins(t.cameras)
    return {
        "event": ins(t.events).on_conflict_do_nothing(index_elements=["event_id", "phase", "ts"]),
        "incident": _incident_upsert(ins(t.incidents)),
        "snapshot": ins(t.snapshots).on_conflict_do_nothing(index_elements=["event_id"]),
        "device_status": ins(t.device_status).on_conflict_do_nothing(
            index_elements=["site", "device", "state", "since"]
        ),
        "camera_status": ins(t.camera_status).on_conflict_do_nothing(
            index_elements=["site", "device", "camera", "state", "since"]
        ),
        "stats": ins(t.stats).on_conflict_do_nothing(index_elements=["site", "device", "ts"]),
        "count": ins(t.counts).on_conflict_do_nothing(
            index_elements=["site", "device", "camera", "rule", "payload_sha256"]
        ),
        "rejected": sa.insert(t.rejected),
        "refused": refused.on_conflict_do_update(
            index_elements=["site", "device", "kind"],
            set_={
                "count": t.refused.c.count + 1,
                "last_size": refused.excluded.last_size,
                "last_at": refused.excluded.last_at,
            },
        ),
        "heard": heard.on_conflict_do_update(
            index_elements=["site", "device"], set_={"last_seen": heard.excluded.last_seen}
        ),
        "registered": ins(t.devices).on_conflict_do_nothing(index_elements=["site", "device"]),
        "camera_place": place.on_conflict_do_update(
            index_elements=["site", "device", "camera"],
            set_={
                "name": place.excluded.name,
                "lat": place.excluded.lat,
                "lon": place.excluded.lon,
                "updated_at": place.excluded.updated_at,
            },
        ),
    }


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
    refused: int = 0
    ignored: int = 0
    owner_crops: int = 0
    clip_chunks: int = 0
    new_event_ids: list[str] = field(default_factory=list)
    # (site, device, event_id) of clips complete in this batch or sent again once complete
    clips_stored: list[tuple[str, str, str]] = field(default_factory=list)


def _sort_key(record: Record) -> tuple[int, str]:
    if isinstance(record, EventRecord):
        e = record.event
        return 0, f"{e['event_id']}\0{e['ts']}\0{e['phase']}"
    if isinstance(record, SnapshotRecord):
        return 1, record.event_id
    if isinstance(record, OwnerCropRecord):
        return 2, record.event_id
    if isinstance(record, ClipChunkRecord):
        return 3, f"{record.event_id}\0{record.index:08d}"
    if isinstance(record, Refused):
        return 4, f"{record.site}\0{record.device}\0{record.kind}"
    return 5, ""


def write_batch(
    conn: Connection, records: Sequence[Record], received_at: float, retained: Sequence[bool] | None = None
) -> BatchResult:
    """Store `records` inside the caller's transaction; the caller commits.

    `retained[i]` marks a retained message: the broker's stored copy, replayed on
    every subscribe, says nothing about when its box was last heard from, so it
    registers the box but leaves `last_seen` alone.
    """
    sql = _statements(conn.dialect.name)

    def new(name: str, row: dict[str, Any]) -> bool:
        return bool(conn.execute(sql[name], row).rowcount > 0)

    result = BatchResult()
    heard: dict[tuple[str, str], bool] = {}  # (site, device) -> heard live in this batch
    announced: dict[tuple[str, str], Announcement] = {}
    flags = list(retained) if retained is not None else [False] * len(records)
    order = sorted(range(len(records)), key=lambda i: _sort_key(records[i]))
    _write_events(conn, sql, [r for r in records if isinstance(r, EventRecord)], received_at, result)
    clips: dict[str, tuple[str, str]] = {}  # event id -> (site, device) of the clips touched
    for er in sorted((r for r in records if isinstance(r, EventRecord)), key=_sort_key):
        if evidence.write_clip_facts(conn, er.event, received_at):
            clips[er.event["event_id"]] = (er.event["site"], er.event["device"])
    for i in order:
        r = records[i]
        where = device_of(r)
        if where is not None:
            heard[where] = heard.get(where, False) or not flags[i]
        if isinstance(r, EventRecord):
            pass  # written above, all at once
        elif isinstance(r, SnapshotRecord):
            result.snapshots += new("snapshot", {
                "event_id": r.event_id, "site": r.site, "device": r.device, "topic": r.topic,
                "sha256": r.sha256, "size": len(r.jpeg), "jpeg": r.jpeg, "received_at": received_at,
            })  # fmt: skip
        elif isinstance(r, OwnerCropRecord):
            result.owner_crops += evidence.write_owner_crop(conn, r, received_at)
        elif isinstance(r, ClipChunkRecord):
            if evidence.write_chunk(conn, r, received_at):
                result.clip_chunks += 1
                clips[r.event_id] = (r.site, r.device)
            else:  # its clip is complete: say so again (the box may have missed the first receipt)
                result.clips_stored.append((r.site, r.device, r.event_id))
        elif isinstance(r, DeviceStatusRecord):
            result.statuses += new("device_status", {
                "site": r.site, "device": r.device, "state": r.state, "since": r.since,
                "reason": r.reason, "received_at": received_at,
            })  # fmt: skip
            if r.announced is not None:
                announced[(r.site, r.device)] = r.announced
        elif isinstance(r, CameraStatusRecord):
            result.statuses += new("camera_status", {
                "site": r.site, "device": r.device, "camera": r.camera, "state": r.state,
                "since": r.since, "received_at": received_at,
            })  # fmt: skip
        elif isinstance(r, StatsRecord):
            result.stats += new("stats", {
                "site": r.site, "device": r.device, "ts": r.ts, "outbox_depth": r.outbox_depth,
                "outbox_dropped": r.outbox_dropped, "payload": r.payload, "received_at": received_at,
            })  # fmt: skip
        elif isinstance(r, CountRecord):
            result.counts += new("count", {
                "site": r.site, "device": r.device, "camera": r.camera, "rule": r.rule,
                "payload": r.payload, "payload_sha256": r.payload_sha256, "received_at": received_at,
                "interval_start": r.interval_start, "interval_epoch": r.interval_epoch,
                "interval_s": r.interval_s, "complete": r.complete, "count": r.count,
            })  # fmt: skip
        elif isinstance(r, Rejected):
            conn.execute(sql["rejected"], {
                "topic": r.topic, "error": r.error[:2000], "payload": r.payload, "received_at": received_at,
                "size": r.size if r.size is not None else len(r.payload),
            })  # fmt: skip
            result.rejected += 1
        elif isinstance(r, Refused):
            conn.execute(sql["refused"], {
                "site": r.site, "device": r.device, "kind": r.kind, "count": 1, "last_size": r.size,
                "first_at": received_at, "last_at": received_at,
            })  # fmt: skip
            result.refused += 1
        elif isinstance(r, CommandResultRecord):
            write_command_result(conn, r.result, received_at)
        elif isinstance(r, Ignored):
            result.ignored += 1
    for event_id in evidence.assemble(conn, clips, received_at):
        result.clips_stored.append((*clips[event_id], event_id))
    for (site, device), live in sorted(heard.items()):
        row = {"site": site, "device": device, "first_seen": received_at, "last_seen": received_at}
        conn.execute(sql["heard" if live else "registered"], row)
    for (site, device), what in sorted(announced.items()):
        _announce(conn, sql, site, device, what, received_at)
    return result


def write_command_result(conn: Connection, result: CommandResult, at: float) -> bool:
    """The box's answer into the row of the command sent from this console (any instance), if it
    is still waiting or timed out; a command sent from a shell has no row. The snapshot's JPEG
    goes into its own column, the rest of the data as JSON."""
    data = dict(result.data)
    jpeg = None
    if "jpeg" in data:
        try:
            jpeg = base64.b64decode(str(data.pop("jpeg")), validate=True)
        except (binascii.Error, ValueError):
            jpeg = None
    done = conn.execute(
        sa.update(t.commands)
        .where(t.commands.c.id == result.id, t.commands.c.state.in_(("sent", "timeout")))
        .values(state=result.state, message=redact(result.message), answered_at=at,
                data=json.dumps(data, ensure_ascii=False), jpeg=jpeg)
    )  # fmt: skip
    return bool(done.rowcount)


def _announce(
    conn: Connection, sql: dict[str, Any], site: str, device: str, what: Announcement, now: float
) -> None:
    """The box's own facts: the latest announcement replaces the last (the row exists by now)."""
    loc = what.location
    conn.execute(
        sa.update(t.devices)
        .where(t.devices.c.site == site, t.devices.c.device == device)
        .values(
            site_name=what.site_name,
            timezone=what.timezone,
            lat=loc.lat if loc else None,
            lon=loc.lon if loc else None,
        )
    )
    if what.cameras is None:
        return
    cams = t.cameras
    ids = sorted({c.camera for c in what.cameras})
    conn.execute(
        sa.delete(cams).where(cams.c.site == site, cams.c.device == device, cams.c.camera.not_in(ids))
    )
    seen: set[str] = set()
    for cam in sorted(what.cameras, key=lambda c: c.camera):
        if cam.camera in seen:
            continue
        seen.add(cam.camera)
        place = cam.location
        conn.execute(sql["camera_place"], {
            "site": site, "device": device, "camera": cam.camera, "name": cam.name,
            "lat": place.lat if place else None, "lon": place.lon if place else None, "updated_at": now,
        })  # fmt: skip


def _write_events(
    conn: Connection, sql: dict[str, Any], records: list[EventRecord], received_at: float, result: BatchResult
) -> None:
    """Insert the phases in key order; the incident rows follow the phases that were new.

    One INSERT ... ON CONFLICT DO NOTHING RETURNING for all phases says which were
    new (a copy, in the batch or already stored, returns nothing), then one
    executemany applies the new ones to their incidents in the same key order,
    so two instances writing the same incidents take their locks in one order.
    """
    if not records:
        return
    records = sorted(records, key=_sort_key)
    ev = t.events
    rows = []
    for r in records:
        e = r.event
        rows.append({
            "event_id": e["event_id"], "phase": e["phase"], "ts": e["ts"], "ts_epoch": r.ts_epoch,
            "site": e["site"], "device": e["device"], "camera": e["camera"], "rule": e["rule"],
            "kind": e["kind"], "severity": e["severity"], "topic": r.topic, "payload": r.payload,
            "received_at": received_at,
        })  # fmt: skip
    stmt = sql["event"].returning(ev.c.event_id, ev.c.phase, ev.c.ts)
    inserted = {(k.event_id, k.phase, k.ts) for k in conn.execute(stmt, rows)}
    upserts = []
    for r in records:
        e = r.event
        key = (e["event_id"], e["phase"], e["ts"])
        if key not in inserted:
            result.duplicates += 1
            continue
        inserted.discard(key)  # a second copy in the same batch is a duplicate
        result.events += 1
        result.new_event_ids.append(e["event_id"])
        snap = e.get("snapshot") or {}
        upserts.append({
            "event_id": e["event_id"], "site": e["site"], "device": e["device"], "camera": e["camera"],
            "rule": e["rule"], "kind": e["kind"], "severity": e["severity"], "zone": e.get("zone"),
            "label": e.get("label"), "score": e.get("score"), "started_at": e["started_at"],
            "started_epoch": r.started_epoch, "last_phase": e["phase"], "last_ts": e["ts"],
            "last_epoch": r.ts_epoch, "ended_at": e["ts"] if e["phase"] == "end" else None,
            "duration_s": float(e["duration_s"]), "phases": 1,
            "objects": json.dumps(e["objects"], separators=(",", ":")),
            "snapshot_topic": snap.get("topic"), "snapshot_sha256": snap.get("sha256"),
            "first_received": received_at, "updated_at": received_at,
        })  # fmt: skip
    if upserts:
        conn.execute(sql["incident"], upserts)
