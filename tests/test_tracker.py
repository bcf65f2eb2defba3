"""Tracker scenarios: scripted detection sequences with asserted track ids.

Boxes are people-sized (40 x 100 px) unless a case says otherwise; at 5 fps
and 100 px/s such a box moves half its width between detector runs, so the
cases below only pass when the motion model predicts by elapsed seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from edge_agent.core.types import Detections
from edge_agent.pipeline.track import kalman
from edge_agent.pipeline.track.assignment import linear_assignment, match_by_iou
from edge_agent.pipeline.track.tracker import Tracker

PERSON, CAR = 0, 2
Row = tuple[list[float], float, int]
Script = list[tuple[float, list[Row]]]


def box(cx: float, cy: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def make_dets(rows: Sequence[Row]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def run(tracker: Tracker, script: Script) -> list[list[int]]:
    """Feed a script; per frame, the track id of each input row (0 = not reported)."""
    out: list[list[int]] = []
    for media_s, rows in script:
        dets = make_dets(rows)
        result = tracker.update(dets, media_s)
        assert result.track_id is not None
        # Reported rows keep the input's order and boxes, so map them back by box.
        ids = [0] * len(rows)
        j = 0
        for i in range(len(rows)):
            if j < len(result) and np.array_equal(result.xyxy[j], dets.xyxy[i]):
                ids[i] = int(result.track_id[j])
                j += 1
        assert j == len(result), "output is not an ordered subset of the input"
        out.append(ids)
    return out


def walk(x0: float, speed_px_s: float, y: float = 200.0) -> Callable[[float], list[float]]:
    return lambda t: box(x0 + speed_px_s * t, y)


# --- crossing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_x0", "a_speed", "b_x0", "b_speed", "b_dy", "b_h"),
    [
        (100.0, 100.0, 400.0, -100.0, 8.0, 100.0),  # head-on, almost the same row
        (100.0, 60.0, 400.0, -120.0, 0.0, 100.0),  # head-on, different speeds, same row
        (100.0, 100.0, 400.0, -100.0, 15.0, 120.0),  # B nearer the camera (taller)
        (100.0, 120.0, 200.0, 40.0, 5.0, 100.0),  # A overtakes B
    ],
)
def test_people_walking_past_each_other_keep_their_ids(
    a_x0: float, a_speed: float, b_x0: float, b_speed: float, b_dy: float, b_h: float
) -> None:
    script: Script = []
    for k in range(16):
        t = k * 0.2
        a: Row = (box(a_x0 + a_speed * t, 200.0), 0.9, PERSON)
        b: Row = (box(b_x0 + b_speed * t, 200.0 + b_dy, h=b_h), 0.85, PERSON)
        # Alternate the input order so that ids cannot follow the row index.
        script.append((t, [a, b] if k % 2 == 0 else [b, a]))
    ids = run(Tracker(), script)

    assert ids[0] == [0, 0]
    # Both are confirmed on frame 1, where B comes first in the input.
    for k, frame_ids in enumerate(ids[1:], start=1):
        a_id, b_id = frame_ids if k % 2 == 0 else frame_ids[::-1]
        assert (a_id, b_id) == (2, 1), f"frame {k}: {frame_ids}"


# --- occlusion and the lost buffer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fps", "occluded_s", "keeps_id"),
    [
        (5, 0.8, True),
        (5, 1.4, True),
        (10, 1.2, True),
        (25, 1.2, True),  # 30 missed frames: the buffer is seconds, not frames
        (5, 3.0, False),
        (25, 2.0, False),
    ],
)
def test_occluded_object_keeps_id_within_lost_s(fps: int, occluded_s: float, keeps_id: bool) -> None:
    path = walk(100.0, 50.0)
    hidden_from, hidden_frames = 2 * fps, round(occluded_s * fps)
    script: Script = []
    for k in range(hidden_from + hidden_frames + 5):
        t = k / fps
        hidden = hidden_from <= k < hidden_from + hidden_frames
        script.append((t, [] if hidden else [(path(t), 0.9, PERSON)]))
    ids = run(Tracker(lost_s=1.5), script)

    before = [f[0] for f in ids[1:hidden_from]]
    after = [f[0] for f in ids[hidden_from + hidden_frames :]]
    assert set(before) == {1}
    if keeps_id:
        assert after == [1] * 5
    else:
        assert after == [0, 2, 2, 2, 2]


def test_still_object_survives_a_long_gap_between_detector_runs() -> None:
    # The motion gate skipped 1..10 s: nothing moved, so the detector did not run.
    still = box(300.0, 200.0)
    script: Script = [(k * 0.2, [(still, 0.9, PERSON)]) for k in range(6)]
    script += [(10.0, []), (10.2, [(still, 0.9, PERSON)]), (10.4, [(still, 0.9, PERSON)])]
    ids = run(Tracker(lost_s=1.5), script)
    assert [f[0] if f else None for f in ids] == [0, 1, 1, 1, 1, 1, None, 1, 1]


def test_object_that_stops_while_hidden_is_found_where_it_was_last_seen() -> None:
    path = walk(100.0, 100.0)
    script: Script = [(k * 0.2, [(path(k * 0.2), 0.9, PERSON)]) for k in range(8)]
    script += [(k * 0.2, []) for k in range(8, 12)]
    script += [(k * 0.2, [(path(7 * 0.2), 0.9, PERSON)]) for k in range(12, 15)]
    ids = run(Tracker(), script)
    assert [f[0] for f in ids[12:]] == [1, 1, 1]


# --- ByteTrack's low-score stage --------------------------------------------------------------------


@pytest.mark.parametrize("score", [0.3, 0.55])
def test_weak_detection_continues_a_track_but_never_starts_one(score: float) -> None:
    path = walk(100.0, 80.0)
    strong = [(k * 0.2, [(path(k * 0.2), 0.9, PERSON)]) for k in range(5)]
    weak = [(k * 0.2, [(path(k * 0.2), score, PERSON)]) for k in range(5, 12)]
    ids = run(Tracker(), [*strong, *weak])
    assert [f[0] for f in ids] == [0] + [1] * 11

    alone = [(k * 0.2, [(box(300.0, 200.0), score, PERSON)]) for k in range(10)]
    tracker = Tracker()
    assert run(tracker, alone) == [[0]] * 10
    assert tracker.tracks == ()


@pytest.mark.parametrize(("score", "revives"), [(0.3, False), (0.55, True), (0.9, True)])
def test_only_high_band_detections_revive_a_lost_track(score: float, revives: bool) -> None:
    path = walk(100.0, 50.0)
    script: Script = [(k * 0.2, [(path(k * 0.2), 0.9, PERSON)]) for k in range(5)]
    script += [(1.0, [])]
    script += [(k * 0.2, [(path(k * 0.2), score, PERSON)]) for k in range(6, 9)]
    ids = run(Tracker(), script)
    assert [f[0] for f in ids[6:]] == ([1, 1, 1] if revives else [0, 0, 0])


def test_detection_below_low_score_is_ignored() -> None:
    path = walk(100.0, 50.0)
    script: Script = [(k * 0.2, [(path(k * 0.2), 0.9, PERSON)]) for k in range(4)]
    script += [(k * 0.2, [(path(k * 0.2), 0.05, PERSON)]) for k in range(4, 6)]
    tracker = Tracker(low_score=0.1)
    ids = run(tracker, script)
    assert [f[0] for f in ids] == [0, 1, 1, 1, 0, 0]
    assert [t.state for t in tracker.tracks] == ["lost"]


# --- confirmation ------------------------------------------------------------------------------------


def test_single_frame_false_positive_is_never_reported_and_uses_no_id() -> None:
    person = walk(100.0, 50.0)
    script: Script = []
    for k in range(10):
        t = k * 0.2
        rows: list[Row] = [(person(t), 0.9, PERSON)]
        if k == 3:
            rows.append((box(500.0, 300.0), 0.95, PERSON))
        if k >= 6:
            rows.append((box(700.0, 200.0), 0.9, PERSON))
        script.append((t, rows))
    ids = run(Tracker(), script)
    assert ids[3] == [1, 0]
    assert [f[1] for f in ids[6:]] == [0, 2, 2, 2]


@pytest.mark.parametrize(
    ("min_hits", "seen", "expected"),
    [
        (1, [1, 1, 1, 1], [1, 1, 1, 1]),
        (2, [1, 1, 1, 1], [0, 1, 1, 1]),
        (3, [1, 1, 1, 1], [0, 0, 1, 1]),
        (3, [1, 1, 0, 1, 1, 1], [0, 0, None, 0, 0, 1]),  # a miss restarts the count
        (2, [1, 0, 1, 1], [0, None, 0, 1]),
    ],
)
def test_min_hits_consecutive_detections_confirm_a_track(
    min_hits: int, seen: list[int], expected: list[int | None]
) -> None:
    still = box(300.0, 200.0)
    script: Script = [(k * 0.2, [(still, 0.9, PERSON)] if s else []) for k, s in enumerate(seen)]
    ids = run(Tracker(min_hits=min_hits), script)
    assert [f[0] if f else None for f in ids] == expected


# --- classes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("class_aware", "car_ids"), [(True, [0, 2, 2, 2]), (False, [1, 1, 1, 1])])
def test_car_box_never_takes_over_a_persons_id(class_aware: bool, car_ids: list[int]) -> None:
    path = walk(100.0, 50.0)
    script: Script = [(k * 0.2, [(path(k * 0.2), 0.9, PERSON)]) for k in range(5)]
    # The person's box now comes back labelled as a car.
    script += [(k * 0.2, [(path(k * 0.2), 0.9, CAR)]) for k in range(5, 9)]
    ids = run(Tracker(class_aware=class_aware), script)
    assert [f[0] for f in ids[5:]] == car_ids


def test_person_walking_past_a_parked_car_keeps_both_ids() -> None:
    car = box(300.0, 220.0, w=160.0, h=90.0)
    person = walk(150.0, 100.0, y=215.0)
    script: Script = [(k * 0.2, [(car, 0.9, CAR), (person(k * 0.2), 0.8, PERSON)]) for k in range(16)]
    ids = run(Tracker(), script)
    assert ids[0] == [0, 0]
    assert all(f == [1, 2] for f in ids[1:])


# --- time ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "velocity_px_s",
    [(60.0, 0.0), (-80.0, 0.0), (0.0, 90.0), (50.0, -50.0)],
)
def test_irregular_frame_spacing_still_associates(velocity_px_s: tuple[float, float]) -> None:
    times = [0.0, 0.2, 0.4, 0.6, 0.8, 1.8, 2.0, 2.2, 3.2, 3.4, 4.4]
    vx, vy = velocity_px_s
    # Each 1.0 s step moves the box further than its own width or height.
    script: Script = [(t, [(box(400.0 + vx * t, 300.0 + vy * t), 0.9, PERSON)]) for t in times]
    ids = run(Tracker(), script)
    assert [f[0] for f in ids] == [0] + [1] * (len(times) - 1)


def test_time_going_back_is_an_error_until_reset() -> None:
    tracker = Tracker()
    tracker.update(make_dets([(box(100.0, 100.0), 0.9, PERSON)]), 5.0)
    with pytest.raises(ValueError, match="went back"):
        tracker.update(Detections.empty(), 4.9)
    tracker.reset()
    assert tracker.tracks == ()
    tracker.update(Detections.empty(), 0.0)


# --- ids ---------------------------------------------------------------------------------------------


def test_ids_are_never_reused() -> None:
    a, b = box(100.0, 200.0), box(500.0, 200.0)
    script: Script = [(k * 0.2, [(a, 0.9, PERSON)]) for k in range(3)]  # A: id 1
    script += [(1.0 + k * 0.2, []) for k in range(15)]  # A dies
    script += [(4.0 + k * 0.2, [(b, 0.9, PERSON)]) for k in range(3)]  # B: id 2
    script += [(4.6 + k * 0.2, [(b, 0.9, PERSON), (a, 0.9, PERSON)]) for k in range(3)]  # A again: id 3
    tracker = Tracker()
    ids = run(tracker, script)
    assert ids[-1] == [2, 3]
    assert [t.track_id for t in tracker.tracks] == [2, 3]

    tracker.reset()
    again = run(tracker, [(0.0, [(a, 0.9, PERSON)]), (0.2, [(a, 0.9, PERSON)])])
    assert again == [[0], [4]]


def test_identical_boxes_get_ids_in_input_order() -> None:
    same = box(300.0, 200.0)
    script: Script = [(k * 0.2, [(same, 0.9, PERSON), (same, 0.8, PERSON)]) for k in range(4)]
    assert run(Tracker(), script) == [[0, 0], [1, 2], [1, 2], [1, 2]]


def _random_scene(seed: int) -> Script:
    rng = np.random.default_rng(seed)
    n = 6
    start = rng.uniform([50, 50], [900, 500], size=(n, 2))
    velocity = rng.uniform(-120, 120, size=(n, 2))
    script: Script = []
    t = 0.0
    for _ in range(60):
        t += float(rng.choice([0.1, 0.2, 0.2, 0.4]))
        rows: list[Row] = []
        for i in range(n):
            if rng.random() < 0.15:
                continue
            cx, cy = start[i] + velocity[i] * t + rng.normal(0, 2, 2)
            score = float(rng.choice([0.9, 0.7, 0.3]))
            rows.append((box(float(cx), float(cy)), score, int(i % 2)))
        if rng.random() < 0.3:
            rows.append((box(*rng.uniform(0, 900, 2)), 0.95, PERSON))
        script.append((t, rows))
    return script


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_input_gives_same_ids(seed: int) -> None:
    script = _random_scene(seed)
    first, second = run(Tracker(), script), run(Tracker(), script)
    assert first == second
    assert max(max(f, default=0) for f in first) >= 6


# --- output contract and track info ---------------------------------------------------------------


def test_update_returns_input_boxes_in_input_order_and_leaves_input_alone() -> None:
    tracker = Tracker()
    rows: list[Row] = [
        (box(100.0, 200.0), 0.9, PERSON),
        (box(400.0, 200.0), 0.05, PERSON),
        (box(700.0, 200.0), 0.8, CAR),
    ]
    tracker.update(make_dets(rows), 0.0)
    moved = [(box(104.0, 203.0), 0.9, PERSON), rows[1], (box(697.0, 201.0), 0.8, CAR)]
    dets = make_dets(moved)
    before = dets.xyxy.copy()
    out = tracker.update(dets, 0.2)
    assert dets.track_id is None
    np.testing.assert_array_equal(dets.xyxy, before)
    np.testing.assert_array_equal(out.xyxy, dets.xyxy[[0, 2]])
    np.testing.assert_array_equal(out.class_id, [PERSON, CAR])
    assert out.track_id is not None
    assert out.track_id.dtype == np.int64
    assert out.track_id.tolist() == [1, 2]


def test_empty_frames() -> None:
    out = Tracker().update(Detections.empty(), 0.0)
    assert len(out) == 0
    assert out.track_id is not None


def test_track_info_follows_a_track_from_tracked_to_lost_to_gone() -> None:
    path = walk(100.0, 50.0)
    tracker = Tracker(lost_s=1.0)
    for k in range(3):
        tracker.update(make_dets([(path(k * 0.2), 0.8 + k * 0.05, PERSON)]), k * 0.2)
    (info,) = tracker.tracks
    assert (info.track_id, info.class_id, info.state, info.hits) == (1, PERSON, "tracked", 3)
    assert info.xyxy == pytest.approx(tuple(path(0.4)))
    assert info.score == pytest.approx(0.9)
    assert (info.first_seen_s, info.last_seen_s, info.age_s) == pytest.approx((0.0, 0.4, 0.4))

    tracker.update(Detections.empty(), 1.0)
    (info,) = tracker.tracks
    assert (info.state, info.hits) == ("lost", 3)
    assert (info.last_seen_s, info.age_s) == pytest.approx((0.4, 1.0))
    assert info.xyxy == pytest.approx(tuple(path(0.4)))
    # While lost, the model carries the box on at the walking speed.
    assert info.predicted_xyxy[0] == pytest.approx(path(1.0)[0], abs=3.0)

    tracker.update(Detections.empty(), 2.0)
    assert [(t.track_id, t.state) for t in tracker.tracks] == [(1, "lost")]
    tracker.update(Detections.empty(), 2.1)
    assert tracker.tracks == ()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"high_score": 0.3, "low_score": 0.4},
        {"high_score": 0.6, "new_track_score": 0.5},
        {"match_iou": 0.0},
        {"low_match_iou": 1.5},
        {"lost_s": -1.0},
        {"lost_s": float("inf")},
        {"min_hits": 0},
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Tracker"):
        Tracker(**kwargs)  # type: ignore[arg-type]


# --- assignment --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "shape"), [(s, shape) for s in range(5) for shape in [(3, 3), (2, 5), (5, 2)]]
)
def test_linear_assignment_is_optimal(seed: int, shape: tuple[int, int]) -> None:
    cost = np.random.default_rng(seed).integers(0, 10, size=shape).astype(float)
    rows, cols = linear_assignment(cost)
    n, m = shape
    assert len(rows) == min(n, m) == len(set(rows.tolist())) == len(set(cols.tolist()))
    assert rows.tolist() == sorted(rows.tolist())
    if n <= m:
        best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
    else:
        best = min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
    assert cost[rows, cols].sum() == pytest.approx(best)


def test_linear_assignment_breaks_ties_by_index() -> None:
    rows, cols = linear_assignment(np.zeros((3, 4)))
    assert (rows.tolist(), cols.tolist()) == ([0, 1, 2], [0, 1, 2])


@pytest.mark.parametrize(
    ("iou", "expected"),
    [
        # Greedy would take the 0.6 pair and strand the other two; the sum is better with both.
        ([[0.6, 0.5], [0.5, 0.1]], [(0, 1), (1, 0)]),
        ([[0.9, 0.3], [0.3, 0.1]], [(0, 0)]),
        ([[0.1, 0.15]], []),
        ([[0.2]], [(0, 0)]),
        ([[0.0], [0.7], [0.3]], [(1, 0)]),
        ([[0.0, 0.7, 0.3]], [(0, 1)]),
        (np.zeros((0, 3)), []),
    ],
)
def test_match_by_iou(iou: list[list[float]], expected: list[tuple[int, int]]) -> None:
    rows, cols = match_by_iou(
        np.asarray(iou, dtype=float).reshape(-1, 3 if not len(iou) else len(iou[0])), 0.2
    )
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == expected


# --- motion model -----------------------------------------------------------------------------------


def test_kalman_prediction_does_not_depend_on_how_time_is_split() -> None:
    mean, cov = kalman.initiate([box(100.0, 200.0)])
    mean, cov = kalman.correct(*kalman.predict(mean, cov, [0.2]), [box(110.0, 200.0)])
    once = kalman.predict(mean, cov, [1.0])
    stepped = (mean, cov)
    for _ in range(5):
        stepped = kalman.predict(*stepped, [0.2])
    np.testing.assert_allclose(once[0], stepped[0])
    np.testing.assert_allclose(once[1], stepped[1], rtol=1e-9)


def test_kalman_learns_a_constant_velocity() -> None:
    mean, cov = kalman.initiate([box(100.0, 200.0)])
    for k in range(1, 8):
        mean, cov = kalman.predict(mean, cov, [0.25])
        mean, cov = kalman.correct(mean, cov, [box(100.0 + 80.0 * k * 0.25, 200.0 - 20.0 * k * 0.25)])
    ahead = kalman.state_to_xyxy(kalman.predict(mean, cov, [1.0])[0])[0]
    t = 8 * 0.25 - 0.25 + 1.0
    np.testing.assert_allclose(ahead, box(100.0 + 80.0 * t, 200.0 - 20.0 * t), atol=2.0)
