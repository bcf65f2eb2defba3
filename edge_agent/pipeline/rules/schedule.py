"""Rule schedules: local time windows (with optional days) in the site's time zone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from edge_agent.core.config import DAYS, Window


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class Schedule:
    """Whether a rule is armed at a wall time. No windows: always armed.

    A window whose `to` is before its `from` runs overnight; its `days` name
    the day the window opens (Friday 22:00 to Saturday 05:00 is `days: [fri]`).
    """

    def __init__(self, windows: Sequence[Window], timezone: str = "UTC") -> None:
        self.windows = [
            (_minutes(w.start), _minutes(w.end), set(w.days) if w.days else None) for w in windows
        ]
        self.tz = ZoneInfo(timezone)

    def armed(self, wall_ts: float) -> bool:
        if not self.windows:
            return True
        local = datetime.fromtimestamp(wall_ts, self.tz)
        now = local.hour * 60 + local.minute
        today = DAYS[local.weekday()]
        yesterday = DAYS[(local.weekday() - 1) % 7]
        for start, end, days in self.windows:
            if start <= end:
                if start <= now < end and (days is None or today in days):
                    return True
            else:
                if now >= start and (days is None or today in days):
                    return True
                if now < end and (days is None or yesterday in days):
                    return True
        return False
