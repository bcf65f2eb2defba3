"""Readable one-line renderings for people at a terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def event_line(ev: Mapping[str, Any]) -> str:
    """`08:15:32 laohu/edge-01 bridge-east dumping START alert suitcase#17 in dump-corner 30.0s [id]`."""
    clock = str(ev.get("ts", ""))[11:19]
    objs = ev.get("objects") or []
    who = ", ".join(f"{o['label']}#{o['track_id']}" for o in objs[:4]) or "-"
    if len(objs) > 4:
        who += f" +{len(objs) - 4}"
    where = f" in {ev['zone']}" if ev.get("zone") else ""
    extra = ""
    details = ev.get("details") or {}
    if details:
        extra = " " + " ".join(f"{k}={v}" for k, v in details.items() if not isinstance(v, (list, dict)))
    return (
        f"{clock} {ev.get('site')}/{ev.get('device')} {ev.get('camera')} {ev.get('rule')} "
        f"{str(ev.get('phase', '')).upper()} {ev.get('severity')} {who}{where} "
        f"t={float(ev.get('media_s', 0)):.1f}s dur={float(ev.get('duration_s', 0)):.1f}s{extra} "
        f"[{ev.get('event_id')}]"
    )
