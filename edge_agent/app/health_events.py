"""The `camera_health` incidents of one camera, made by the same `EventBuilder` as rule events.

Two incidents, each `start` then `end`:
- `offline`: the camera gave no frame for `offline_after_s` (`details.state` "offline", with the
  reader's last error as `reason`); it ends when frames flow again;
- `pipeline-error`: the camera's pipeline raised (`details.state` "error", the exception as
  `reason`); it ends at the first frame the restarted pipeline analyses without a fault.

Times are wall clock. `media_s` keeps its contract meaning, seconds from the start of the
source: the media time of the newest frame this camera's reader delivered when the incident
changed (0 before the first frame), so a platform can put a health incident beside the rule
events of the same stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_agent.core.types import Event, Frame
from edge_agent.pipeline.events import EventBuilder, EventDraft

HEALTH_RULE = "camera-health"
HEALTH_KIND = "camera_health"
OFFLINE = "offline"
FAULT = "pipeline-error"


class HealthEvents:
    def __init__(
        self, site: str, device: str, camera: str, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._builder = EventBuilder(site, device, camera)
        self._wall_clock = wall_clock
        self._media_s = 0.0
        self._frame_index = -1
        # key -> (start wall time, frame index at the start, details of the start)
        self._open: dict[str, tuple[float, int, dict[str, Any]]] = {}

    @property
    def fault_open(self) -> bool:
        return FAULT in self._open

    def seen(self, frame: Frame) -> None:
        """The newest frame of this camera's reader: where health incidents sit in its stream."""
        self._media_s = frame.media_s
        self._frame_index = frame.index

    def restarted(self) -> None:
        """A new reader starts its media time at 0 again."""
        self._media_s = 0.0
        self._frame_index = -1

    def outage_start(self, frame_index: int, reason: str | None) -> Event | None:
        details: dict[str, Any] = {"state": "offline"} | ({"reason": reason} if reason else {})
        return self._start(OFFLINE, frame_index, details)

    def outage_end(self) -> Event | None:
        return self._end(OFFLINE, {"state": "online"})

    def fault_start(self, reason: str, faults: int) -> Event | None:
        return self._start(FAULT, self._frame_index, {"state": "error", "reason": reason, "faults": faults})

    def fault_end(self) -> Event | None:
        return self._end(FAULT, {"state": "running"})

    def _start(self, key: str, frame_index: int, details: dict[str, Any]) -> Event | None:
        if key in self._open:
            return None  # one incident per problem: repeats are counted in stats, not re-sent
        wall = self._wall_clock()
        self._open[key] = (wall, frame_index, details)
        return self._event("start", key, wall, frame_index, details)

    def _end(self, key: str, details: dict[str, Any]) -> Event | None:
        opened = self._open.pop(key, None)
        if opened is None:
            return None
        since, frame_index, _ = opened
        return self._event("end", key, since, frame_index, details)

    def _event(self, phase: str, key: str, since: float, frame_index: int, details: dict[str, Any]) -> Event:
        wall = self._wall_clock()
        offset = wall - self._media_s  # wall time minus media time, as for rule events
        draft = EventDraft(
            rule=HEALTH_RULE,
            kind=HEALTH_KIND,
            severity="warning",
            zone=None,
            line=None,
            phase=phase,
            key=key,
            since_s=since - offset,
            media_s=self._media_s,
            start_frame=frame_index,
            objects=(),
            details=details,
        )
        return self._builder.build(draft, offset)
