"""Camera-health incidents: built by the one EventBuilder, with a media_s that means media time."""

from __future__ import annotations

import numpy as np

from edge_agent.app.health_events import HealthEvents
from edge_agent.contract.schemas import validate
from edge_agent.core.types import Frame

T0 = 1_764_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def frame(index: int, media_s: float) -> Frame:
    return Frame("east", index, media_s, T0 + media_s, np.zeros((2, 2, 3), np.uint8))


def test_an_outage_is_one_incident_with_wall_times_and_the_streams_media_time() -> None:
    clock = Clock()
    health = HealthEvents("laohu", "edge-01", "east", wall_clock=clock)
    health.seen(frame(41, 12.5))
    clock.now = T0 + 40.0
    start = health.outage_start(41, "cannot open rtsp://admin:***@cam/1")
    assert start is not None and health.outage_start(41, "again") is None  # one incident
    clock.now = T0 + 70.0
    end = health.outage_end()
    assert end is not None and health.outage_end() is None
    assert start.event_id == end.event_id and start.kind == end.kind == "camera_health"
    assert (start.phase, end.phase) == ("start", "end")
    assert start.media_s == end.media_s == 12.5  # the newest frame's place in the stream, not uptime
    assert start.started_at == end.started_at == "2025-11-24T16:00:40.000Z"
    assert end.ts == "2025-11-24T16:01:10.000Z" and end.duration_s == 30.0
    assert start.details == {"state": "offline", "reason": "cannot open rtsp://admin:***@cam/1"}
    assert end.details == {"state": "online"}
    for event in (start, end):
        assert validate("event", event.to_dict()) == []


def test_a_pipeline_fault_before_any_frame_sits_at_media_time_zero() -> None:
    clock = Clock()
    health = HealthEvents("laohu", "edge-01", "east", wall_clock=clock)
    start = health.fault_start("RuntimeError: boom", 1)
    assert start is not None and start.media_s == 0.0 and health.fault_open
    assert health.fault_start("RuntimeError: boom", 2) is None
    clock.now += 3.0
    end = health.fault_end()
    assert end is not None and end.details == {"state": "running"} and end.duration_s == 3.0
    assert not health.fault_open
