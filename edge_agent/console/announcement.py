"""What an online box says about itself in its status: the village's name and time zone, and
where the village and its cameras are (`contract/status.py` on the box side).

Every field is optional and checked here, not trusted: a zone this machine does not know or a
location off the globe is left out, so the console falls back to its own zone or leaves the
place off the map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float


@dataclass(frozen=True)
class CameraPlace:
    camera: str
    name: str | None
    location: Location | None


@dataclass(frozen=True)
class Announcement:
    """What an online box says about itself in its status (all optional in the payload)."""

    site_name: str | None
    timezone: str | None
    location: Location | None
    cameras: tuple[CameraPlace, ...] | None


def _location(value: Any) -> Location | None:
    if not isinstance(value, dict):
        return None
    lat, lon = value.get("lat"), value.get("lon")
    numbers = [v for v in (lat, lon) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) != 2 or not all(math.isfinite(v) for v in numbers):
        return None
    if not (-90 <= numbers[0] <= 90 and -180 <= numbers[1] <= 180):
        return None
    return Location(float(numbers[0]), float(numbers[1]))


def _zone(value: Any) -> str | None:
    """An IANA zone name this machine knows, else None (times are then shown in the console's zone)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


def announcement_of(data: dict[str, Any]) -> Announcement | None:
    """The optional facts an online status carries; None when it carries none (an older box)."""
    if data["state"] != "online" or not any(
        k in data for k in ("site_name", "timezone", "location", "cameras")
    ):
        return None
    cameras = None
    if isinstance(data.get("cameras"), list):
        cameras = tuple(
            CameraPlace(str(c["id"]), c.get("name") or None, _location(c.get("location")))
            for c in data["cameras"]
            if isinstance(c, dict) and isinstance(c.get("id"), str)
        )
    site_name = data.get("site_name")
    return Announcement(
        site_name if isinstance(site_name, str) and site_name else None,
        _zone(data.get("timezone")),
        _location(data.get("location")),
        cameras,
    )
