"""Reads for the pages, the API and the CSV exports: incidents, one incident, health, counts.

Every function takes a SQLAlchemy Connection and returns plain JSON-able dicts.
Times come as RFC 3339 UTC text (`started_at`, `acknowledged_at`, ...) and,
where the page computes with them, as seconds since the epoch (`*_epoch`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_agent.console import evidence
from edge_agent.console import tables as t
from edge_agent.console.series import count_rows, count_series, counts, zone
from edge_agent.console.tables import OPEN_STATES, STATES

__all__ = [
    "EXPORT_COLUMNS",
    "IncidentFilter",
    "count_rows",
    "count_series",
    "counts",
    "facets",
    "health",
    "incident",
    "incidents",
    "incidents_rows",
    "snapshot_jpeg",
    "status_counters",
    "totals",
    "zone",
]

MAX_LIMIT = 1000
EXPORT_MAX_ROWS = 100_000
TABS = ("alerts", "info", "all")
SEVERITIES = ("info", "warning", "alert")
_LEGACY_VERDICT = {"resolved": "confirmed", "false_alarm": "false_alarm"}

inc, dev = t.incidents, t.devices


@dataclass(frozen=True)
class IncidentFilter:
    """What the alert list shows; every member optional. `from_epoch` <= start < `to_epoch`.

    `state` is one of STATES or "open"; `tab` "alerts" (warning and alert, the
    default), "info" or "all"; `updated_since` keeps incidents changed after it
    (the live stream). A bad value raises ValueError naming its key.
    """

    site: str | None = None
    device: str | None = None
    camera: str | None = None
    rule: str | None = None
    severity: str | None = None
    state: str | None = None
    tab: str = "alerts"
    from_epoch: float | None = None
    to_epoch: float | None = None
    limit: int = 200
    updated_since: float | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state != "open" and self.state not in STATES:
            raise ValueError(f"state: one of open, {', '.join(STATES)}; got {self.state!r}")
        if self.tab not in TABS:
            raise ValueError(f"tab: one of {', '.join(TABS)}; got {self.tab!r}")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"severity: one of {', '.join(SEVERITIES)}; got {self.severity!r}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit: 1..{MAX_LIMIT}; got {self.limit}")

    def where(self) -> list[Any]:
        clauses: list[Any] = [
            inc.c[key] == getattr(self, key)
            for key in ("site", "device", "camera", "rule", "severity")
            if getattr(self, key) is not None
        ]
        if self.state == "open":
            clauses.append(inc.c.state.in_(OPEN_STATES))
        elif self.state is not None:
            clauses.append(inc.c.state == self.state)
        if self.tab == "alerts":
            clauses.append(inc.c.severity.in_(("warning", "alert")))
        elif self.tab == "info":
            clauses.append(inc.c.severity == "info")
        if self.from_epoch is not None:
            clauses.append(inc.c.started_epoch >= self.from_epoch)
        if self.to_epoch is not None:
            clauses.append(inc.c.started_epoch < self.to_epoch)
        if self.updated_since is not None:
            clauses.append(inc.c.updated_at > self.updated_since)
        return clauses


def _iso(ts: float | None) -> str | None:
    """Seconds since the epoch -> RFC 3339 UTC with milliseconds, as in the payloads."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(round(float(ts), 3), timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


_COLUMNS = [*inc.c, dev.c.site_name, dev.c.timezone]
_JOINED = inc.outerjoin(dev, sa.and_(dev.c.site == inc.c.site, dev.c.device == inc.c.device))
# Open alerts first, then open warnings, then the rest.
_PRIORITY = sa.case(
    (sa.and_(inc.c.state.in_(OPEN_STATES), inc.c.severity == "alert"), 0),
    (sa.and_(inc.c.state.in_(OPEN_STATES), inc.c.severity == "warning"), 1),
    else_=2,
)


def _incident(r: Any) -> dict[str, Any]:
    ack = _f(r.acknowledged_at)
    return {
        "event_id": r.event_id,
        "site": r.site,
        "site_name": r.site_name,
        "device": r.device,
        "camera": r.camera,
        "rule": r.rule,
        "kind": r.kind,
        "severity": r.severity,
        "zone": r.zone,
        "label": r.label,
        "score": _f(r.score),
        "started_at": r.started_at,
        "started_epoch": float(r.started_epoch),
        "last_phase": r.last_phase,
        "last_ts": r.last_ts,
        "ended_at": r.ended_at,
        "duration_s": float(r.duration_s),
        "phases": int(r.phases),
        "objects": json.loads(r.objects),
        "snapshot": r.snapshot_topic is not None,
        "snapshot_url": f"/api/incidents/{r.event_id}/snapshot.jpg" if r.snapshot_topic else None,
        "state": r.state,
        "assignee": r.assignee,
        "acknowledged_at": _iso(ack),
        "acknowledged_epoch": ack,
        "acknowledged_by": r.acknowledged_by,
        "time_to_ack_s": None if ack is None else round(ack - float(r.first_received), 3),
        "resolved_at": _iso(_f(r.resolved_at)),
        "state_changed_at": _iso(_f(r.state_changed_at)),
        "received_at": _iso(float(r.first_received)),
        "updated_epoch": float(r.updated_at),
        "timezone": r.timezone,
        "verdict": _LEGACY_VERDICT.get(r.state),
    }


def incidents(conn: Connection, flt: IncidentFilter) -> list[dict[str, Any]]:
    """Open alerts first, then open warnings, then the rest; newest start first within each."""
    stmt = (
        sa.select(*_COLUMNS)
        .select_from(_JOINED)
        .where(*flt.where())
        .order_by(_PRIORITY, inc.c.started_epoch.desc(), inc.c.event_id)
        .limit(flt.limit)
    )
    return [_incident(r) for r in conn.execute(stmt)]


def incident(conn: Connection, event_id: str) -> dict[str, Any] | None:
    """One incident with its phases as received (oldest first), its audit trail and snapshot check."""
    row = conn.execute(sa.select(*_COLUMNS).select_from(_JOINED).where(inc.c.event_id == event_id)).first()
    if row is None:
        return None
    out = _incident(row)
    ev = t.events
    phases = conn.execute(
        sa.select(ev.c.phase, ev.c.ts, ev.c.payload, ev.c.received_at)
        .where(ev.c.event_id == event_id)
        .order_by(ev.c.ts_epoch, ev.c.id)
    )
    out["timeline"] = [
        {"phase": p.phase, "ts": p.ts, "received_at": float(p.received_at), "event": json.loads(p.payload)}
        for p in phases
    ]
    au = t.incident_audit
    out["audit"] = [
        {
            "at": _iso(a.at),
            "at_epoch": float(a.at),
            "who": a.who,
            "action": a.action,
            "from_state": a.from_state,
            "to_state": a.to_state,
            "assignee": a.assignee,
            "note": a.note,
        }
        for a in conn.execute(sa.select(au).where(au.c.event_id == event_id).order_by(au.c.id))
    ]
    sn = t.snapshots
    snap = conn.execute(
        sa.select(sn.c.sha256, sn.c.size, sn.c.purged_at).where(sn.c.event_id == event_id)
    ).first()
    out["snapshot_info"] = None
    if row.snapshot_topic:
        out["snapshot_info"] = {
            "received": snap is not None,
            "size": int(snap.size) if snap else None,
            "sha256_ok": bool(snap and snap.sha256 == row.snapshot_sha256),
            "purged": bool(snap and snap.purged_at is not None),
        }
    out.update(evidence.infos(conn, event_id, out["timeline"]))
    return out


def snapshot_jpeg(conn: Connection, event_id: str) -> bytes | None:
    """The JPEG, or None when there is none or retention has emptied it."""
    sn = t.snapshots
    row = conn.execute(sa.select(sn.c.jpeg, sn.c.purged_at).where(sn.c.event_id == event_id)).first()
    return None if row is None or row.purged_at is not None else bytes(row.jpeg)


def _latest(conn: Connection, table: sa.Table, keys: list[str]) -> dict[tuple[str, ...], Any]:
    """The newest row per key of a history table (by arrival, i.e. the highest id)."""
    newest = (
        sa.select(*[table.c[k] for k in keys], sa.func.max(table.c.id).label("id"))
        .group_by(*[table.c[k] for k in keys])
        .subquery()
    )
    rows = conn.execute(sa.select(table).join(newest, newest.c.id == table.c.id))
    return {tuple(str(getattr(r, k)) for k in keys): r for r in rows}


def _place(lat: Any, lon: Any) -> dict[str, float] | None:
    return None if lat is None or lon is None else {"lat": float(lat), "lon": float(lon)}


def health(conn: Connection, stalled_after_s: float, now: float | None = None) -> dict[str, Any]:
    """Every device and camera: state and since when; the device's outbox depth from its last stats;
    what the box announces (site name, time zone, places).

    A device whose last status says online but from which nothing (events, stats,
    status) has come for `stalled_after_s` shows as `stalled`; a camera of an
    offline device shows as `unknown`, whatever it last said.
    """
    now = time.time() if now is None else now
    devices = conn.execute(sa.select(dev).order_by(dev.c.site, dev.c.device)).all()
    status = _latest(conn, t.device_status, ["site", "device"])
    cams = _latest(conn, t.camera_status, ["site", "device", "camera"])
    stats = _latest(conn, t.stats, ["site", "device"])
    places = {(c.site, c.device, c.camera): c for c in conn.execute(sa.select(t.cameras))}
    out = []
    for d in devices:
        key = (d.site, d.device)
        st = status.get(key)
        state = st.state if st else "unknown"
        since = st.since if st else None
        silent_s = now - float(d.last_seen)
        if state == "online" and silent_s > stalled_after_s:
            state = "stalled"
        if st is not None and st.state == "offline" and st.reason == "connection_lost":
            # A Last Will's `since` is when the lost connection opened; the broker's publish is
            # the closest we have to the moment of loss.
            since = _iso(float(st.received_at))
        s = stats.get(key)
        names = sorted(
            {c for (si, de, c) in cams if (si, de) == key} | {c for (si, de, c) in places if (si, de) == key}
        )
        cameras = []
        for camera in names:
            c, p = cams.get((*key, camera)), places.get((*key, camera))
            reported = c.state if c else "unknown"
            cameras.append(
                {
                    "camera": camera,
                    "state": reported if state == "online" else "unknown",
                    "reported": reported,
                    "since": c.since if c else None,
                    "name": p.name if p else None,
                    "location": _place(p.lat, p.lon) if p else None,
                }
            )
        out.append(
            {
                "site": d.site,
                "site_name": d.site_name,
                "device": d.device,
                "timezone": d.timezone,
                "location": _place(d.lat, d.lon),
                "state": state,
                "since": since,
                "reason": st.reason if st else None,
                "last_seen": _iso(float(d.last_seen)),
                "silent_s": round(silent_s, 1),
                "outbox_depth": s.outbox_depth if s else None,
                "outbox_dropped": s.outbox_dropped if s else None,
                "stats_ts": s.ts if s else None,
                "cameras": cameras,
            }
        )
    return {"devices": out, "generated_at": _iso(now)}


def facets(conn: Connection) -> dict[str, list[str]]:
    """The values each filter can take (for the page's drop-downs)."""
    out = {}
    for key in ("site", "device", "camera", "rule", "severity"):
        col = inc.c[key]
        out[key] = [str(v) for v in conn.execute(sa.select(col).distinct().order_by(col)).scalars()]
    out["state"] = list(STATES)
    return out


EXPORT_COLUMNS = (
    "event_id",
    "site",
    "site_name",
    "device",
    "camera",
    "rule",
    "kind",
    "severity",
    "zone",
    "label",
    "score",
    "started_at",
    "ended_at",
    "last_phase",
    "phases",
    "state",
    "assignee",
    "acknowledged_at",
    "acknowledged_by",
    "time_to_ack_s",
    "resolved_at",
    "timezone",
)


def incidents_rows(conn: Connection, flt: IncidentFilter) -> list[dict[str, Any]]:
    """The filter's incidents as flat rows for the CSV export, oldest start first (no limit but
    EXPORT_MAX_ROWS)."""
    stmt = (
        sa.select(*_COLUMNS)
        .select_from(_JOINED)
        .where(*flt.where())
        .order_by(inc.c.started_epoch, inc.c.event_id)
        .limit(EXPORT_MAX_ROWS)
    )
    rows = [_incident(r) for r in conn.execute(stmt)]
    return [{k: row[k] for k in EXPORT_COLUMNS} for row in rows]


def totals(conn: Connection) -> dict[str, int]:
    out = {}
    for table in (t.events, t.incidents, t.snapshots, t.rejected, t.counts, t.stats, t.incident_audit):
        out[table.name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    return out


def status_counters(conn: Connection) -> dict[str, Any]:
    """Messages refused for their size per box and kind, and rows retention deleted per kind."""
    refused: dict[str, dict[str, int]] = {}
    rf = t.refused
    for r in conn.execute(
        sa.select(rf.c.site, rf.c.device, rf.c.kind, rf.c.count.label("n")).order_by(
            rf.c.site, rf.c.device, rf.c.kind
        )
    ):
        refused.setdefault(f"{r.site}/{r.device}", {})[r.kind] = int(r.n)
    purged = {r.kind: int(r.rows) for r in conn.execute(sa.select(t.purged).order_by(t.purged.c.kind))}
    return {"refused": refused, "purged": purged}
