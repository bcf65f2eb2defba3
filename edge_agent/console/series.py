"""The `count` rules' aggregates: as received, summed per local hour or day, and flat for export.

A box publishes one aggregate per interval, complete or cut short (`complete:
false`, later superseded by the complete one), and may publish a copy again:
every read here takes each interval once, its complete message if there is
one, else its newest partial.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_agent.console import tables as t

EXPORT_MAX_ROWS = 100_000


def counts(
    conn: Connection,
    site: str | None = None,
    device: str | None = None,
    camera: str | None = None,
    rule: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The newest `count` aggregates as received (newest first)."""
    c = t.counts
    where = [
        c.c[k] == v
        for k, v in (("site", site), ("device", device), ("camera", camera), ("rule", rule))
        if v is not None
    ]
    stmt = (
        sa.select(c.c.site, c.c.device, c.c.camera, c.c.rule, c.c.payload, c.c.received_at)
        .where(*where)
        .order_by(c.c.id.desc())
        .limit(limit)
    )
    return [
        {
            "site": r.site,
            "device": r.device,
            "camera": r.camera,
            "rule": r.rule,
            "payload": json.loads(r.payload),
            "received_at": float(r.received_at),
        }
        for r in conn.execute(stmt)
    ]


def _aggregates(conn: Connection, where: list[Any]) -> list[Any]:
    """Each interval's aggregate once: its complete message if there is one, else the newest partial."""
    c = t.counts
    stmt = (
        sa.select(
            c.c.id,
            c.c.site,
            c.c.device,
            c.c.camera,
            c.c.rule,
            c.c.interval_start,
            c.c.interval_epoch,
            c.c.interval_s,
            c.c.complete,
            c.c.count.label("n"),
        )
        .where(c.c.interval_epoch.is_not(None), *where)
        .order_by(c.c.interval_epoch, c.c.id)
    )
    best: dict[tuple[str, ...], Any] = {}
    for r in conn.execute(stmt):
        key = (r.site, r.device, r.camera, r.rule, r.interval_start)
        have = best.get(key)
        if have is None or (bool(r.complete), r.id) > (bool(have.complete), have.id):
            best[key] = r
    return list(best.values())


def _count_where(
    site: str | None,
    device: str | None,
    camera: str | None,
    rule: str | None,
    from_epoch: float | None,
    to_epoch: float | None,
) -> list[Any]:
    c = t.counts
    where = [
        c.c[k] == v
        for k, v in (("site", site), ("device", device), ("camera", camera), ("rule", rule))
        if v is not None
    ]
    if from_epoch is not None:
        where.append(c.c.interval_epoch >= from_epoch)
    if to_epoch is not None:
        where.append(c.c.interval_epoch < to_epoch)
    return where


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it when this machine does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"timezone: unknown IANA time zone {name!r}") from err


def count_series(
    conn: Connection,
    *,
    bucket: str,
    tz: str,
    site: str | None = None,
    device: str | None = None,
    camera: str | None = None,
    rule: str | None = None,
    from_epoch: float | None = None,
    to_epoch: float | None = None,
) -> list[dict[str, Any]]:
    """Counts summed per local hour or day in zone `tz` (an interval counts in the bucket of its
    start), per site, device, camera and rule; oldest bucket first."""
    if bucket not in ("hour", "day"):
        raise ValueError(f"bucket: hour or day; got {bucket!r}")
    local = zone(tz)
    sums: dict[tuple[str, str, str, str, str], int] = {}
    for r in _aggregates(conn, _count_where(site, device, camera, rule, from_epoch, to_epoch)):
        start = datetime.fromtimestamp(float(r.interval_epoch), local)
        start = start.replace(minute=0, second=0, microsecond=0)
        if bucket == "day":
            start = start.replace(hour=0)  # zoneinfo gives the new wall time its own offset (DST)
        key = (start.isoformat(), r.site, r.device, r.camera, r.rule)
        sums[key] = sums.get(key, 0) + int(r.n)
    return [
        {"bucket": k[0], "site": k[1], "device": k[2], "camera": k[3], "rule": k[4], "count": n}
        for k, n in sorted(sums.items())
    ]


def count_rows(
    conn: Connection, from_epoch: float | None = None, to_epoch: float | None = None
) -> list[dict[str, Any]]:
    """Every interval's aggregate once, for the CSV export (oldest first)."""
    rows = _aggregates(conn, _count_where(None, None, None, None, from_epoch, to_epoch))[:EXPORT_MAX_ROWS]
    return [
        {
            "site": r.site,
            "device": r.device,
            "camera": r.camera,
            "rule": r.rule,
            "interval_start": r.interval_start,
            "interval_s": float(r.interval_s),
            "complete": bool(r.complete),
            "count": int(r.n),
        }
        for r in rows
    ]
