"""Camera health: the published status (`online` / `stalled` / `offline`) and per-camera stats.

The reader thread reports what it sees right now; a camera on a long Wi-Fi
link drops for a second many times a day, and a status that flapped with
every reconnect would bury the one outage that matters. So:

- `online` as soon as frames flow;
- `stalled` as soon as the reader says so (a hung stream is news at once);
- `offline` only after the camera gave no frame for `offline_after_s`; until
  then a camera that lost its connection keeps its last published status.

Pure logic: the caller passes the time in, so tests run on a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from edge_agent.core.config import redact
from edge_agent.core.types import iso_utc

READER_STATUSES = ("starting", "online", "stalled", "offline")
STATES = ("online", "stalled", "offline")


class ReaderCounters(Protocol):
    """What a camera reader (`RtspSource`) exposes to health and stats."""

    @property
    def status(self) -> str: ...
    @property
    def fps(self) -> float: ...
    @property
    def frames_read(self) -> int: ...
    @property
    def frames_dropped(self) -> int: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def stalls(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...


class CameraHealth:
    """The debounced status of one camera; `update()` says when it changes.

    `state` is None until the first verdict: frames (online), a stall, or
    `offline_after_s` without a frame since this object was made.
    """

    def __init__(
        self,
        camera_id: str,
        offline_after_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if offline_after_s <= 0:
            raise ValueError(f"camera {camera_id}: offline_after_s must be > 0, got {offline_after_s}")
        self.camera_id = camera_id
        self.offline_after_s = offline_after_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_frame_at = clock()  # the grace period for a camera that never came up starts now
        self.state: str | None = None
        self.since: str | None = None
        self.changes = 0

    def update(self, reader_status: str, now: float | None = None) -> str | None:
        """Take the reader's status at `now` (monotonic); the new state if it changed, else None."""
        if reader_status not in READER_STATUSES:
            raise ValueError(
                f"camera {self.camera_id}: unknown reader status {reader_status!r} "
                f"(expected one of {', '.join(READER_STATUSES)})"
            )
        now = self._clock() if now is None else now
        target: str | None
        if reader_status == "online":
            self._last_frame_at = now
            target = "online"
        elif reader_status == "stalled":
            target = "stalled"
        elif now - self._last_frame_at >= self.offline_after_s:
            target = "offline"
        else:
            target = self.state  # a short drop: keep what was published
        if target == self.state:
            return None
        self.state = target
        self.since = iso_utc(self._wall_clock())
        self.changes += 1
        return target

    def unreachable_s(self, now: float | None = None) -> float:
        """Seconds since the last update that saw frames flowing."""
        return (self._clock() if now is None else now) - self._last_frame_at

    def payload(self) -> dict[str, Any]:
        """The retained status message: `{"state": ..., "since": ...}`."""
        return {"state": self.state, "since": self.since}

    def stats(self, reader: ReaderCounters) -> dict[str, Any]:
        """One camera's entry in the stats payload."""
        return {
            "state": self.state,
            "status": reader.status,
            "fps": round(float(reader.fps), 2),
            "frames_read": reader.frames_read,
            "frames_dropped": reader.frames_dropped,
            "reconnects": reader.reconnects,
            "stalls": reader.stalls,
            "last_error": None if reader.last_error is None else redact(reader.last_error),
        }
