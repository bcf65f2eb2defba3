"""Rule kinds and the event lifecycle, driven by scripted tracked detections (no model)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from edge_agent.app.config import CameraConfig
from edge_agent.core.config import Window
from edge_agent.core.masks import PrivacyMasks
from edge_agent.core.types import Detections, Frame
from edge_agent.pipeline.events import EventDraft
from edge_agent.pipeline.gate import FramePacer
from edge_agent.pipeline.rules.base import Scene, object_refs, select
from edge_agent.pipeline.rules.engine import RuleEngine
from edge_agent.pipeline.rules.schedule import Schedule

LABELS = ("person", "bicycle", "car")
W = H = 100
IMAGE = np.zeros((H, W, 3), np.uint8)
FPS = 5.0
NOON = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc).timestamp()


def camera(*rules: dict, **extra: object) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "cam",
            "url": "file:///dev/null",
            "zones": {"box": {"polygon": [[0.4, 0.4], [0.8, 0.4], [0.8, 0.8], [0.4, 0.8]]}},
            "lines": {"mid": {"points": [[0.5, 0.0], [0.5, 1.0]]}},
            "rules": list(rules),
            **extra,
        }
    )


def obj(tid: int, cx: float, bottom: float, cls: int = 0, score: float = 0.9, h: float = 20.0) -> tuple:
    return (tid, cx - 5, bottom - h, cx + 5, bottom, score, cls)


def run(cam: CameraConfig, frames: list[list[tuple]], start_wall: float = NOON) -> list[EventDraft]:
    engine = RuleEngine(cam, 0.35)
    out: list[EventDraft] = []
    for i, rows in enumerate(frames):
        t = i / FPS
        if rows:
            arr = np.asarray(rows, dtype=np.float64)
            dets = Detections(arr[:, 1:5], arr[:, 5], arr[:, 6].astype(np.int32), arr[:, 0].astype(np.int64))
        else:
            dets = Detections.empty().with_track_ids(np.zeros(0, np.int64))
        out += engine.step(Scene(Frame("cam", i, t, start_wall + t, IMAGE), dets, LABELS))
    out += engine.close(len(frames) / FPS)
    return out


def phases(drafts: list[EventDraft]) -> list[tuple[str, str, float]]:
    return [(d.rule, d.phase, round(d.media_s, 1)) for d in drafts]


PRESENCE = {"id": "p", "kind": "presence", "zone": "box", "labels": ["person"], "min_frames": 3}


def test_presence_starts_after_confirmation_and_ends_after_leaving() -> None:
    frames = [[]] * 2 + [[obj(1, 60, 60)]] * 10 + [[]] * 10
    assert phases(run(camera(PRESENCE), frames)) == [("p", "start", 0.8), ("p", "end", 3.2)]


@pytest.mark.parametrize(
    ("bottom", "fires"),
    [
        (60, True),  # feet inside
        (35, False),  # box overlaps the zone (25..35) but the feet stand above it
        (85, False),  # feet below the zone
    ],
)
def test_presence_uses_the_bottom_centre_anchor(bottom: float, fires: bool) -> None:
    frames = [[obj(1, 60, bottom, h=30)]] * 10
    assert bool(run(camera(PRESENCE), frames)) is fires


def test_presence_ignores_other_labels_and_low_scores() -> None:
    frames = [[obj(1, 60, 60, cls=2), obj(2, 60, 60, score=0.2)]] * 10
    assert run(camera(PRESENCE), frames) == []


def test_rule_min_score_overrides_the_model() -> None:
    frames = [[obj(1, 60, 60, score=0.5)]] * 10
    assert run(camera({**PRESENCE, "min_score": 0.6}), frames) == []
    assert run(camera({**PRESENCE, "min_score": 0.4}), frames) != []


def test_a_flickering_box_does_not_end_an_incident() -> None:
    frames = ([[obj(1, 60, 60)]] * 5 + [[]] * 3) * 3 + [[obj(1, 60, 60)]] * 5
    got = phases(run(camera(PRESENCE), frames))
    assert [p for _, p, _ in got] == ["start", "end"]


def test_one_incident_per_zone_with_every_object_listed() -> None:
    frames = [[obj(1, 50, 60), obj(2, 70, 70)]] * 6
    drafts = run(camera(PRESENCE), frames)
    assert [d.phase for d in drafts] == ["start", "end"]
    assert sorted(o.track_id for o in drafts[0].objects) == [1, 2]


def test_rules_of_one_frame_share_work_but_each_sees_its_own_objects() -> None:
    # three rules on one zone: two select people (with their own confirmation), one cars
    cam = camera(
        PRESENCE,
        {**PRESENCE, "id": "cars", "labels": ["car"]},
        {**PRESENCE, "id": "slow", "min_frames": 8},
    )
    frames = [[obj(1, 60, 60), obj(2, 10, 10, cls=2)]] * 4 + [[obj(1, 10, 10), obj(2, 60, 60, cls=2)]] * 6
    seen = {(d.rule, o.track_id, o.label) for d in run(cam, frames) for o in d.objects}
    assert seen == {("p", 1, "person"), ("cars", 2, "car")}


def test_select_is_worked_out_once_per_frame_and_shared_read_only() -> None:
    arr = np.asarray([obj(1, 60, 60), obj(2, 10, 10, cls=2), obj(3, 20, 20, score=0.2)], np.float64)
    dets = Detections(arr[:, 1:5], arr[:, 5], arr[:, 6].astype(np.int32), arr[:, 0].astype(np.int64))
    scene = Scene(Frame("cam", 0, 0.0, NOON, IMAGE), dets, LABELS)
    people = select(scene, ["person"], 0.35)
    assert select(scene, ["person"], 0.35) is people and people.tolist() == [0]
    assert not people.flags.writeable
    assert select(scene, ["car"], 0.35).tolist() == [1]
    assert select(scene, None, 0.1).tolist() == [0, 1, 2]
    (ref,) = object_refs(scene, people)
    assert (ref.track_id, ref.label, ref.xyxy, ref.frame_size) == (1, "person", (55, 40, 65, 60), (W, H))
    assert ref.score == float(np.float32(0.9))


def test_update_when_objects_change_and_heartbeat() -> None:
    # person 1 stays 150 s; person 2 joins at 20 s
    frames = [[obj(1, 50, 60)] + ([obj(2, 70, 70)] if i >= 100 else []) for i in range(750)]
    got = phases(run(camera(PRESENCE), frames))
    # start once confirmed (3 frames), update when person 2 is confirmed, then every 60 s
    assert got == [("p", "start", 0.4), ("p", "update", 20.4), ("p", "update", 80.4), ("p", "update", 140.4),
                   ("p", "end", 150.0)]  # fmt: skip


def test_cooldown_suppresses_a_quick_second_incident() -> None:
    visit = [[obj(1, 60, 60)]] * 5 + [[]] * 10
    frames = visit * 2 + [[]] * 50 + visit
    rule = {**PRESENCE, "cooldown_s": 10}
    starts = [t for _, p, t in phases(run(camera(rule), frames)) if p == "start"]
    assert starts == [0.4, 16.4]  # the visit at 3.4 s falls in the cooldown after the end at 2.8 s


def test_schedule_arms_the_rule_only_in_its_window() -> None:
    frames = [[obj(1, 60, 60)]] * 10
    night = {**PRESENCE, "schedule": {"from": "22:00", "to": "05:00"}}
    assert run(camera(night), frames, start_wall=NOON) == []
    midnight = datetime(2026, 11, 26, 23, 30, tzinfo=timezone.utc).timestamp()
    assert [d.phase for d in run(camera(night), frames, start_wall=midnight)] == ["start", "end"]


@pytest.mark.parametrize(
    ("when", "days", "armed"),
    [
        ("2026-11-27T23:00", None, True),  # Friday night
        ("2026-11-27T04:59", None, True),
        ("2026-11-27T05:00", None, False),
        ("2026-11-27T12:00", None, False),
        ("2026-11-27T23:00", ["fri"], True),
        ("2026-11-28T03:00", ["fri"], True),  # Saturday early morning belongs to Friday's window
        ("2026-11-26T23:00", ["fri"], False),  # Thursday night
    ],
)
def test_overnight_schedule_with_days(when: str, days: list[str] | None, armed: bool) -> None:
    window = Window.model_validate({"from": "22:00", "to": "05:00", "days": days})
    ts = datetime.fromisoformat(when).replace(tzinfo=timezone.utc).timestamp()
    assert Schedule([window]).armed(ts) is armed


def test_schedule_uses_the_site_time_zone() -> None:
    window = Window.model_validate({"from": "22:00", "to": "05:00"})
    ts = datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc).timestamp()
    assert Schedule([window], "Asia/Shanghai").armed(ts)
    assert not Schedule([window], "UTC").armed(ts)


DWELL = {"id": "d", "kind": "dwell", "zone": "box", "labels": ["car"], "min_dwell_s": 10}


def test_dwell_fires_after_min_dwell_s_per_track() -> None:
    frames = [[obj(7, 60, 60, cls=2)]] * 80
    drafts = run(camera(DWELL), frames)
    assert [(d.phase, round(d.media_s, 1), round(d.since_s, 1)) for d in drafts] == [
        ("start", 10.0, 0.0),
        ("end", 16.0, 0.0),
    ]
    assert drafts[0].objects[0].track_id == 7


def test_stationary_dwell_restarts_when_the_object_moves() -> None:
    # a car waits 6 s, rolls 15 px (more than half its height), then stands 12 s
    frames = [[obj(7, 45, 60, cls=2)]] * 30 + [[obj(7, 60, 60, cls=2)]] * 60
    drafts = run(camera({**DWELL, "stationary": True}), frames)
    assert [(d.phase, round(d.since_s, 1), round(d.media_s, 1)) for d in drafts] == [
        ("start", 6.0, 16.0),
        ("end", 6.0, 18.0),
    ]
    # without `stationary`, the dwell counts from the entry
    drafts = run(camera(DWELL), frames)
    assert (drafts[0].since_s, drafts[0].media_s) == (0.0, 10.0)


CROWD = {"id": "c", "kind": "crowd", "zone": "box", "labels": ["person"], "min_count": 3, "min_duration_s": 4}


def test_crowd_needs_the_count_for_the_duration() -> None:
    three = [obj(1, 45, 50), obj(2, 55, 60), obj(3, 65, 70)]
    frames = [three[:2]] * 20 + [three] * 15 + [three[:2]] * 10 + [three] * 30
    drafts = run(camera(CROWD), frames)
    assert phases(drafts) == [("c", "start", 13.2), ("c", "end", 15.0)]
    assert drafts[0].details == {"count": 3}


LINE = {"id": "l", "kind": "line_cross", "line": "mid", "labels": ["person"], "direction": "any"}


def walk(tid: int, xs: list[float]) -> list[list[tuple]]:
    return [[obj(tid, x, 60)] for x in xs]


@pytest.mark.parametrize(
    ("direction", "xs", "expected"),
    [
        # the line runs top to bottom: its right-hand side is the picture's left
        ("in", [80, 70, 60, 40, 30, 20], ["in"]),
        ("in", [20, 30, 40, 60, 70, 80], []),
        ("out", [20, 30, 40, 60, 70, 80], ["out"]),
        ("any", [20, 40, 60, 80, 60, 40, 20], ["out", "in"]),
        # jitter on the line never counts
        ("any", [30, 49, 51, 49, 51, 49, 51, 30], []),
    ],
)
def test_line_cross_direction(direction: str, xs: list[float], expected: list[str]) -> None:
    drafts = run(camera({**LINE, "direction": direction}), walk(3, xs))
    assert [d.details["direction"] for d in drafts] == expected
    assert all(d.phase == "start" and d.instant for d in drafts)


def test_line_cross_counts_each_person() -> None:
    frames = [[obj(1, x, 60), obj(2, x + 4, 70)] for x in (80, 70, 60, 40, 30)]
    assert sorted(d.objects[0].track_id for d in run(camera(LINE), frames)) == [1, 2]


def test_frame_pacer_keeps_the_detect_rate_by_media_time() -> None:
    pacer = FramePacer(5.0)
    due = [i for i in range(100) if pacer.due(i / 25.0)]  # a 25 fps source, 4 s
    assert len(due) == 20 and due[:3] == [0, 5, 10]
    assert pacer.skipped == 80


def test_privacy_masks_black_out_their_pixels_and_nothing_else() -> None:
    img = np.full((100, 200, 3), 200, np.uint8)
    masks = PrivacyMasks([[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]])
    out = masks.apply(Frame("cam", 0, 0.0, 0.0, img)).image
    assert out[10, 10].tolist() == [0, 0, 0]
    assert out[80, 150].tolist() == [200, 200, 200]
    assert img[10, 10].tolist() == [200, 200, 200]  # the source frame is never changed
