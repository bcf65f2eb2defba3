"""Readable one-line renderings of events for people at a terminal (`replay`, `listen`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def short_id(event_id: str, width: int = 12) -> str:
    return event_id if len(event_id) <= width else event_id[:width] + "…"


def event_line(e: Mapping[str, Any]) -> str:
    """`08:15:32 laohu/edge-01 bridge-east dumping START alert suitcase#17 in dump-corner 30.0s [id…]`."""
    ts = str(e.get("ts", ""))
    clock = ts[11:19] if len(ts) >= 19 else ts
    objects = e.get("objects") or []
    if objects:
        what = f"{objects[0].get('label')}#{objects[0].get('track_id')}"
    else:
        what = str(e.get("label") or e.get("kind") or "-")
    where = f" in {e['zone']}" if e.get("zone") else ""
    duration = float(e.get("duration_s") or 0.0)
    return (
        f"{clock} {e.get('site')}/{e.get('device')} {e.get('camera')} {e.get('rule')} "
        f"{str(e.get('phase', '')).upper()} {e.get('severity')} {what}{where} {duration:.1f}s "
        f"[{short_id(str(e.get('event_id', '')))}]"
    )
