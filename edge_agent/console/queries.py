"""Reads for the page and the API: incidents with filters, one incident, the health board."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from edge_agent.console.db import Conn
from edge_agent.console.records import epoch

FILTER_KEYS = ("site", "device", "camera", "rule", "severity", "verdict")
MAX_LIMIT = 1000

_INCIDENT_COLUMNS = (
    "event_id, site, device, camera, rule, kind, severity, zone, label, score, started_at, last_phase,"
    " last_ts, ended_at, duration_s, phases, objects, snapshot_topic, snapshot_sha256, verdict,"
    " verdict_by, verdict_at, updated_at"
)


@dataclass(frozen=True)
class IncidentFilter:
    """What the alert list shows; every member optional. Times are RFC 3339 (`from_ts` <= start < `to_ts`)."""

    site: str | None = None
    device: str | None = None
    camera: str | None = None
    rule: str | None = None
    severity: str | None = None
    verdict: str | None = None
    from_ts: str | None = None
    to_ts: str | None = None
    limit: int = 200

    @classmethod
    def from_query(cls, query: Mapping[str, list[str]]) -> IncidentFilter:
        """From `?site=laohu&from=2026-11-26T08:00:00Z&limit=50`; ValueError naming a bad value."""

        def one(key: str) -> str | None:
            values = query.get(key)
            return values[0] if values and values[0] != "" else None

        for key in ("from", "to"):
            text = one(key)
            if text is not None:
                try:
                    epoch(text)
                except ValueError as err:
                    raise ValueError(
                        f"{key}: expected a time like 2026-11-26T08:00:00Z, got {text!r}"
                    ) from err
        limit_text = one("limit") or "200"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise ValueError(f"limit: expected 1..{MAX_LIMIT}, got {limit_text!r}")
        return cls(**{k: one(k) for k in FILTER_KEYS}, from_ts=one("from"), to_ts=one("to"),
                   limit=int(limit_text))  # fmt: skip

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for key in FILTER_KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            if key == "verdict" and value == "none":
                clauses.append("verdict IS NULL")
            else:
                clauses.append(f"{key} = ?")
                params.append(value)
        if self.from_ts is not None:
            clauses.append("started_epoch >= ?")
            params.append(epoch(self.from_ts))
        if self.to_ts is not None:
            clauses.append("started_epoch < ?")
            params.append(epoch(self.to_ts))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _incident(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["objects"] = json.loads(out["objects"])
    out["updated_at"] = float(out["updated_at"])
    out["snapshot_url"] = f"/api/incidents/{out['event_id']}/snapshot.jpg" if out["snapshot_topic"] else None
    return out


def incidents(conn: Conn, flt: IncidentFilter, updated_since: float | None = None) -> list[dict[str, Any]]:
    """Newest first by start; with `updated_since`, only those changed after it (for the live stream)."""
    where, params = flt.where()
    if updated_since is not None:
        where += (" AND " if where else " WHERE ") + "updated_at > ?"
        params.append(updated_since)
    sql = f"SELECT {_INCIDENT_COLUMNS} FROM incidents{where} ORDER BY started_epoch DESC, event_id LIMIT ?"  # noqa: S608 (filters are bound parameters)
    return [_incident(r) for r in conn.all(sql, [*params, flt.limit])]


def incident(conn: Conn, event_id: str) -> dict[str, Any] | None:
    """One incident with its phases (oldest first), verdict history and snapshot check."""
    row = conn.one(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE event_id = ?", (event_id,))  # noqa: S608
    if row is None:
        return None
    out = _incident(row)
    phases = conn.all(
        "SELECT phase, ts, payload, received_at FROM events WHERE event_id = ? ORDER BY ts_epoch, id",
        (event_id,),
    )
    out["timeline"] = [
        {"phase": p["phase"], "ts": p["ts"], "received_at": float(p["received_at"]),
         "event": json.loads(p["payload"])}
        for p in phases
    ]  # fmt: skip
    out["verdicts"] = conn.all(
        "SELECT verdict, by_user, at, note FROM verdicts WHERE event_id = ? ORDER BY id", (event_id,)
    )
    snap = conn.one("SELECT sha256, size, received_at FROM snapshots WHERE event_id = ?", (event_id,))
    out["snapshot"] = None
    if out["snapshot_topic"]:
        out["snapshot"] = {
            "received": snap is not None,
            "size": int(snap["size"]) if snap else None,
            "sha256_ok": bool(snap and snap["sha256"] == out["snapshot_sha256"]),
        }
    return out


def snapshot_jpeg(conn: Conn, event_id: str) -> bytes | None:
    value = conn.scalar("SELECT jpeg FROM snapshots WHERE event_id = ?", (event_id,))
    return None if value is None else bytes(value)


def _latest(conn: Conn, table: str, keys: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """The newest row per key of a history table (by arrival, then id)."""
    rows = conn.all(
        f"SELECT t.* FROM {table} t JOIN (SELECT {keys}, MAX(id) AS id FROM {table} GROUP BY {keys}) m"  # noqa: S608 (fixed names)
        " ON t.id = m.id"
    )
    names = keys.split(", ")
    return {tuple(str(r[n]) for n in names): r for r in rows}


def health(conn: Conn, stalled_after_s: float, now: float | None = None) -> dict[str, Any]:
    """Every device and camera: state and since when; the device's outbox depth from its last stats.

    A device whose last status says online but from which nothing (events, stats,
    status) has come for `stalled_after_s` shows as `stalled`; a camera of an
    offline device shows as `unknown`, whatever it last said.
    """
    now = time.time() if now is None else now
    devices = conn.all("SELECT site, device, first_seen, last_seen FROM devices ORDER BY site, device")
    status = _latest(conn, "device_status", "site, device")
    cams = _latest(conn, "camera_status", "site, device, camera")
    stats = _latest(conn, "stats", "site, device")
    out = []
    for d in devices:
        key = (d["site"], d["device"])
        st = status.get(key)
        state = st["state"] if st else "unknown"
        since = st["since"] if st else None
        silent_s = now - float(d["last_seen"])
        if state == "online" and silent_s > stalled_after_s:
            state = "stalled"
        if st is not None and st["state"] == "offline" and st.get("reason") == "connection_lost":
            # A Last Will's `since` is when the lost connection opened; the broker's publish is
            # the closest we have to the moment of loss.
            since = _iso(float(st["received_at"]))
        s = stats.get(key)
        cameras = []
        for (site, device, camera), c in sorted(cams.items()):
            if (site, device) != key:
                continue
            cam_state = c["state"] if state == "online" else "unknown"
            cameras.append(
                {"camera": camera, "state": cam_state, "reported": c["state"], "since": c["since"]}
            )
        out.append(
            {
                "site": d["site"],
                "device": d["device"],
                "state": state,
                "since": since,
                "reason": st.get("reason") if st else None,
                "last_seen": _iso(float(d["last_seen"])),
                "silent_s": round(silent_s, 1),
                "outbox_depth": s["outbox_depth"] if s else None,
                "outbox_dropped": s["outbox_dropped"] if s else None,
                "stats_ts": s["ts"] if s else None,
                "cameras": cameras,
            }
        )
    return {"devices": out, "generated_at": _iso(now)}


def facets(conn: Conn) -> dict[str, list[str]]:
    """The values each filter can take (for the page's drop-downs)."""
    out = {}
    for key in ("site", "device", "camera", "rule", "severity"):
        out[key] = [str(r[key]) for r in conn.all(f"SELECT DISTINCT {key} FROM incidents ORDER BY {key}")]  # noqa: S608
    return out


def totals(conn: Conn) -> dict[str, int]:
    out = {}
    for table in ("events", "incidents", "snapshots", "rejected", "counts", "stats"):
        out[table] = int(conn.scalar(f"SELECT COUNT(*) FROM {table}"))  # noqa: S608 (fixed names)
    return out


def _iso(ts: float) -> str:
    """Seconds since the epoch -> RFC 3339 UTC with milliseconds, as in the payloads."""
    dt = datetime.fromtimestamp(round(ts, 3), timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
