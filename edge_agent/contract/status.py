"""What a box says about itself in its retained `online` status: the village's name and time
zone, and where the village and its cameras are.

The town console shows every time in the village's zone and places the boxes and cameras on
its map from this; nothing else is needed there (mqtt/status.schema.json).
"""

from __future__ import annotations

from typing import Any

from edge_agent.core.config import Config, Location


def _where(location: Location | None) -> dict[str, float] | None:
    return None if location is None else {"lat": location.lat, "lon": location.lon}


def announcement(cfg: Config) -> dict[str, Any]:
    """The fields the box adds to its `online` status (only those it has)."""
    out: dict[str, Any] = {"timezone": cfg.site.timezone}
    if cfg.site.name:
        out["site_name"] = cfg.site.name
    if cfg.site.location is not None:
        out["location"] = _where(cfg.site.location)
    cameras = []
    for cam in cfg.cameras:
        entry: dict[str, Any] = {"id": cam.id}
        if cam.location is not None:
            entry["location"] = _where(cam.location)
        cameras.append(entry)
    out["cameras"] = cameras
    return out
