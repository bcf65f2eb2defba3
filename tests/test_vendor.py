"""`vendor` driven by scripted detections (no model)."""

from __future__ import annotations

from edge_agent.app.config import CameraConfig
from tests.test_left_object import FPS, Row, person, run, walk

UMBRELLA, CHAIR = 3, 4


def camera(**rule: object) -> CameraConfig:
    spec = {"id": "stall", "kind": "vendor", "zone": "road", "min_dwell_s": 30}
    spec.update(rule)
    return CameraConfig.model_validate(
        {
            "id": "cam",
            "url": "x.mp4",
            "zones": {"road": {"polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]}},
            "rules": [spec],
        }
    )


def umbrella(x: float, y: float = 150.0) -> Row:
    return (x - 40, y - 30, x + 40, y + 10, 0.8, UMBRELLA)


def chair(x: float, y: float = 260.0) -> Row:
    return (x - 15, y - 35, x + 15, y, 0.7, CHAIR)


def test_person_with_umbrella_and_chair_staying_fires_once_naming_the_items() -> None:
    def script(t: float) -> list[Row]:
        if t >= 50:
            return []
        sway = 3.0 if int(t * FPS) % 2 else 0.0
        return [person(100 + sway), umbrella(100), chair(140)]

    events = run(camera(), script, 70)
    assert [e.phase for e in events] == ["start", "end"]
    start = events[0]
    assert start.objects[0].label == "person"
    assert {o.label for o in start.objects[1:]} == {"umbrella", "chair"}
    assert start.details["items"] == ["chair", "umbrella"]
    assert 30.0 <= start.media_s <= 31.0
    assert 50.0 <= events[1].media_s <= 50.0 + 9.0


def test_person_alone_never_fires() -> None:
    assert run(camera(), lambda t: [person(100)], 80) == []


def test_person_walking_through_with_umbrella_never_fires() -> None:
    def script(t: float) -> list[Row]:
        x = walk(t, 0, 30, 0, 400)  # a slow stroll through the zone, never settled
        return [person(x), umbrella(x)] if t < 30 else []

    assert run(camera(), script, 70) == []


def test_items_out_of_reach_do_not_count() -> None:
    assert run(camera(), lambda t: [person(30), chair(290)], 60) == []


def test_vendor_outside_the_zone_is_ignored() -> None:
    assert run(camera(), lambda t: [person(300), umbrella(300), chair(330)], 60) == []


def test_vendor_survives_a_short_gap_in_detection() -> None:
    def script(t: float) -> list[Row]:
        if 20 <= t < 24:
            return []  # a van stands in front
        return [person(100), umbrella(100), chair(140)]

    events = run(camera(), script, 60)
    assert [e.phase for e in events] == ["start", "end"]
    assert events[0].since_s <= 0.4  # the still period began before the gap
