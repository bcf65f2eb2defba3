"""CameraHealth: debounced camera status on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from edge_agent.app.health import CameraHealth, iso_utc

T0_WALL = 1_795_000_000.0  # 2026-11-18T11:06:40Z


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return T0_WALL + self.now


def make(offline_after_s: float = 30.0) -> tuple[CameraHealth, FakeClock]:
    clock = FakeClock()
    return CameraHealth("cam-a", offline_after_s, clock, wall_clock=clock.wall), clock


def run(health: CameraHealth, clock: FakeClock, script: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Feed (time offset, reader status) pairs; returns the transitions as (offset, state)."""
    start = clock.now
    out = []
    for offset, status in script:
        clock.now = start + offset
        change = health.update(status)
        if change is not None:
            out.append((offset, change))
    return out


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        # frames from the start
        ([(0.5, "starting"), (1.0, "online"), (2.0, "online")], [(1.0, "online")]),
        # a short drop (reconnect within offline_after_s) never leaves online
        ([(1, "online"), (2, "offline"), (20, "offline"), (25, "online")], [(1, "online")]),
        # a long drop: offline exactly offline_after_s after the last frame, then back
        (
            [
                (1, "online"),
                (2, "offline"),
                (30.9, "offline"),
                (31, "offline"),
                (40, "offline"),
                (41, "online"),
            ],
            [(1, "online"), (31, "offline"), (41, "online")],
        ),
        # a stall is published at once, then offline once the camera stays silent
        (
            [(1, "online"), (3, "stalled"), (10, "offline"), (30, "offline"), (31, "offline")],
            [(1, "online"), (3, "stalled"), (31, "offline")],
        ),
        # a stall that clears
        ([(1, "online"), (3, "stalled"), (4, "online")], [(1, "online"), (3, "stalled"), (4, "online")]),
        # a camera that never answers: offline after the grace period from start
        ([(5, "starting"), (29, "offline"), (30, "offline"), (60, "offline")], [(30, "offline")]),
    ],
)
def test_transitions(script: list[tuple[float, str]], expected: list[tuple[float, str]]) -> None:
    health, clock = make(offline_after_s=30.0)
    assert run(health, clock, script) == expected
    assert health.state == (expected[-1][1] if expected else None)


def test_since_is_the_wall_time_of_the_last_change() -> None:
    health, clock = make(offline_after_s=10.0)
    assert health.payload() == {"state": None, "since": None}
    clock.now = 101.5
    assert health.update("online") == "online"
    assert health.payload() == {"state": "online", "since": iso_utc(T0_WALL + 101.5)}
    clock.now = 105.0
    assert health.update("online") is None
    assert health.since == iso_utc(T0_WALL + 101.5), "since moves only on a change"
    assert health.changes == 1


def test_iso_utc_format() -> None:
    assert iso_utc(0.4) == "1970-01-01T00:00:00.400Z"
    assert iso_utc(1_795_000_000.0) == "2026-11-18T11:06:40.000Z"


def test_now_argument_overrides_the_clock() -> None:
    health, _clock = make(offline_after_s=5.0)
    assert health.update("online", now=200.0) == "online"
    assert health.update("offline", now=204.9) is None
    assert health.unreachable_s(now=204.9) == pytest.approx(4.9)
    assert health.update("offline", now=205.0) == "offline"


def test_unknown_reader_status_is_an_error() -> None:
    health, _ = make()
    with pytest.raises(ValueError, match="unknown reader status 'up'"):
        health.update("up")


def test_offline_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="offline_after_s"):
        CameraHealth("cam-a", 0.0)


@dataclass
class FakeReader:
    status: str = "online"
    fps: float = 9.87654
    frames_read: int = 1200
    frames_dropped: int = 600
    reconnects: int = 3
    stalls: int = 1
    last_error: str | None = "cannot open rtsp://admin:hunter22@10.0.0.5/live: RTSP 401 Unauthorized"


def test_stats_entry() -> None:
    health, _ = make()
    health.update("online")
    stats = health.stats(FakeReader())
    assert stats == {
        "state": "online",
        "status": "online",
        "fps": 9.88,
        "frames_read": 1200,
        "frames_dropped": 600,
        "reconnects": 3,
        "stalls": 1,
        "last_error": "cannot open rtsp://admin:***@10.0.0.5/live: RTSP 401 Unauthorized",
    }
    assert "hunter22" not in str(stats)
