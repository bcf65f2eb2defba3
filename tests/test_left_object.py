"""`left_object` driven by scripted detections and synthetic frames (no model)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from edge_agent.app.config import CameraConfig
from edge_agent.core.types import Frame
from edge_agent.pipeline.detect.scripted import boxes
from edge_agent.pipeline.events import EventDraft
from edge_agent.pipeline.rules.background import DualBackground
from edge_agent.pipeline.rules.base import Scene
from edge_agent.pipeline.rules.engine import RuleEngine
from edge_agent.pipeline.rules.static_store import BACKGROUND_ID_BASE
from edge_agent.pipeline.track.tracker import Tracker

LABELS = ("person", "car", "suitcase", "umbrella", "chair")
PERSON, CAR, SUITCASE = 0, 1, 2
W, H = 400, 300
FPS = 5.0
Row = tuple[float, float, float, float, float, int]


def camera(**rule: object) -> CameraConfig:
    spec = {"id": "dump", "kind": "left_object", "zone": "road", "min_static_s": 10, "background": False}
    spec.update(rule)
    return CameraConfig.model_validate(
        {
            "id": "cam",
            "url": "x.mp4",
            "zones": {"road": {"polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]}},
            "rules": [spec],
        }
    )


def blank(_: int) -> npt.NDArray[np.uint8]:
    return np.full((H, W, 3), 128, np.uint8)


def run(
    cam: CameraConfig,
    script: Callable[[float], list[Row]],
    seconds: float,
    image: Callable[[int], npt.NDArray[np.uint8]] = blank,
) -> list[EventDraft]:
    engine = RuleEngine(cam, 0.3)
    tracker = Tracker()
    out: list[EventDraft] = []
    for i in range(int(seconds * FPS)):
        t = i / FPS
        tracked = tracker.update(boxes(script(t)), t)
        frame = Frame("cam", i, t, 1e9 + t, image(i))
        out.extend(engine.step(Scene(frame, tracked, LABELS)))
    out.extend(engine.close(seconds))
    return out


def walk(t: float, t0: float, t1: float, x0: float, x1: float) -> float:
    if t <= t0:
        return x0
    if t >= t1:
        return x1
    return x0 + (x1 - x0) * (t - t0) / (t1 - t0)


def person(x: float, y: float = 260.0) -> Row:
    return (x - 20, y - 110, x + 20, y, 0.9, PERSON)


def bag(x: float, y: float = 260.0) -> Row:
    return (x - 12, y - 24, x + 12, y, 0.8, SUITCASE)


def dumping(t: float, occlude: tuple[float, float] | None = None, removed_at: float = 60.0) -> list[Row]:
    """A person carries a bag to x=100, puts it down at t=5 and walks out; removed at `removed_at`."""
    rows: list[Row] = []
    if t < 5:
        x = walk(t, 0, 5, 350, 100)
        rows += [person(x), bag(x + 22, 250)]
    elif t < 12:
        rows += [person(walk(t, 5, 12, 100, 390)), bag(122)]
    elif t < removed_at:
        rows.append(bag(122))
    if occlude and occlude[0] <= t < occlude[1]:
        rows = [r for r in rows if r[5] != SUITCASE]
        rows.append(person(122, 270))
    return rows


def starts(events: list[EventDraft]) -> list[EventDraft]:
    return [e for e in events if e.phase == "start"]


def test_dumped_bag_fires_once_names_the_owner_and_ends_when_removed() -> None:
    events = run(camera(), dumping, 80)
    (start,) = starts(events)
    assert start.objects[0].label == "suitcase"
    assert start.details["path"] == "detector"
    assert start.details["owner_track"] is not None
    assert 15.0 <= start.media_s <= 17.0  # put down at 5 s + min_static_s 10 s (+ the owner leaving)
    ends = [e for e in events if e.phase == "end"]
    assert len(ends) == 1 and ends[0].key == start.key
    assert 60.0 <= ends[0].media_s <= 60.0 + 7.0


def test_owner_track_is_the_person_who_carried_it() -> None:
    engine_events = run(camera(), dumping, 30)
    (start,) = starts(engine_events)
    tracker = Tracker()
    person_ids = set()
    for i in range(10):
        t = i / FPS
        tracked = tracker.update(boxes(dumping(t)), t)
        assert tracked.track_id is not None
        person_ids |= {int(k) for k, c in zip(tracked.track_id, tracked.class_id, strict=True) if c == PERSON}
    assert start.details["owner_track"] in person_ids


def test_passer_by_occluding_the_bag_does_not_end_the_incident() -> None:
    events = run(camera(), lambda t: dumping(t, occlude=(25.0, 29.0)), 80)
    assert len(starts(events)) == 1
    assert [e.media_s >= 60 for e in events if e.phase == "end"] == [True]


def test_owner_picking_the_bag_up_before_min_static_gives_no_event() -> None:
    def script(t: float) -> list[Row]:
        if t < 5:
            x = walk(t, 0, 5, 350, 100)
            return [person(x), bag(x + 22, 250)]
        if t < 8:
            return [person(walk(t, 5, 8, 100, 200)), bag(122)]
        if t < 11:
            return [person(walk(t, 8, 11, 200, 122)), bag(122)]
        x = walk(t, 11, 16, 122, 390)
        return [person(x), bag(x + 22, 250)] if t < 16 else []

    assert run(camera(), script, 40) == []


def test_owner_picking_the_bag_up_after_the_alert_ends_it() -> None:
    def script(t: float) -> list[Row]:
        if t < 30:
            return dumping(t)
        x = walk(t, 30, 34, 122, 390)
        return [person(x), bag(x + 22, 250)] if t < 34 else []

    events = run(camera(), script, 50)
    assert [e.phase for e in events] == ["start", "end"]
    assert events[1].media_s <= 37.0


def test_two_bags_left_in_one_zone_are_two_incidents() -> None:
    def script(t: float) -> list[Row]:
        rows = dumping(t)
        if 0 <= t < 60:
            rows.append(bag(40, 200) if t >= 3 else bag(walk(t, 0, 3, 390, 40), 200))
            if t < 3:
                rows.append(person(walk(t, 0, 3, 390, 40) - 22, 205))
            elif t < 8:
                rows.append(person(walk(t, 3, 8, 40, 390), 205))
        return rows

    events = starts(run(camera(), script, 70))
    assert len(events) == 2
    assert len({e.key for e in events}) == 2


def test_bag_on_the_zone_border_counts() -> None:
    def script(t: float) -> list[Row]:
        return [(190.0, 230.0, 214.0, 254.0, 0.8, SUITCASE)] if t >= 2 else []  # anchor x=202 > 200

    assert len(starts(run(camera(), script, 20))) == 1


def test_bag_outside_the_zone_is_ignored() -> None:
    def script(t: float) -> list[Row]:
        return [(300.0, 230.0, 324.0, 254.0, 0.8, SUITCASE)] if t >= 2 else []

    assert run(camera(), script, 20) == []


def test_person_standing_with_a_bag_is_not_an_incident() -> None:
    def script(t: float) -> list[Row]:
        return [person(100), bag(122)]

    assert run(camera(), script, 40) == []


def test_person_walking_through_with_a_bag_is_not_an_incident() -> None:
    def script(t: float) -> list[Row]:
        x = walk(t, 0, 20, 0, 400)
        return [person(x), bag(x + 22, 250)]

    assert run(camera(), script, 30) == []


# --- background path --------------------------------------------------------------


def textured(i: int, rng_seed: int = 7) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(rng_seed)
    img = rng.integers(100, 160, (H, W, 3), dtype=np.uint8)
    return img


BASE = textured(0)


def with_blob(t0: float, t1: float = 1e9, brightness_at: float | None = None) -> Callable[[int], np.ndarray]:
    def image(i: int) -> npt.NDArray[np.uint8]:
        t = i / FPS
        img = BASE.copy()
        if t0 <= t < t1:
            img[200:250, 60:120] = 20
        if brightness_at is not None and t >= brightness_at:
            img = np.clip(img.astype(np.int16) + 80, 0, 255).astype(np.uint8)
        return img

    return image


def bg_camera(**extra: object) -> CameraConfig:
    return camera(background=True, labels=[], **extra)


def test_background_dark_blob_that_stays_fires_and_ends_when_removed() -> None:
    events = run(bg_camera(), lambda t: [], 60, with_blob(5.0, 40.0))
    assert [e.phase for e in events] == ["start", "end"]
    start = events[0]
    assert start.objects[0].label == "object"
    assert start.objects[0].track_id > BACKGROUND_ID_BASE  # positive, of its own range
    assert start.details["path"] == "background"
    assert 15.0 <= start.media_s <= 20.0
    assert 40.0 <= events[1].media_s <= 48.0


def test_background_global_brightness_jump_does_not_fire() -> None:
    def image(i: int) -> npt.NDArray[np.uint8]:
        return np.clip(BASE.astype(np.int16) + (80 if i / FPS >= 10 else 0), 0, 255).astype(np.uint8)

    assert run(bg_camera(), lambda t: [], 60, image) == []


def test_background_slow_fade_of_light_does_not_fire() -> None:
    def image(i: int) -> npt.NDArray[np.uint8]:
        step = min(max(i / FPS - 10, 0.0), 5.0) * 16  # +80 grey levels over 5 s
        return np.clip(BASE.astype(np.int16) + int(step), 0, 255).astype(np.uint8)

    assert run(bg_camera(), lambda t: [], 60, image) == []


def test_background_blob_explained_by_a_person_track_does_not_fire() -> None:
    def script(t: float) -> list[Row]:
        return [(55.0, 150.0, 125.0, 255.0, 0.9, PERSON)] if t >= 5 else []

    assert run(bg_camera(), script, 60, with_blob(5.0)) == []


def test_background_blob_under_a_detected_bag_gives_one_incident() -> None:
    def script(t: float) -> list[Row]:
        return [(60.0, 200.0, 120.0, 250.0, 0.8, SUITCASE)] if t >= 5 else []

    cam = camera(background=True)
    events = starts(run(cam, script, 40, with_blob(5.0)))
    assert len(events) == 1
    assert events[0].details["path"] == "detector"


def test_dual_background_is_deterministic() -> None:
    a, b = DualBackground(), DualBackground()
    image = with_blob(2.0)
    for i in range(40):
        ra = a.update(image(i), i / FPS)
        rb = b.update(image(i), i / FPS)
        assert ra == rb
    assert ra and ra[0].area > 0


# --- removed, not left; honest scores; which paths fire -------------------------


def blob_until(t1: float) -> Callable[[int], np.ndarray]:
    """The dark blob lies there from the first frame (the backgrounds learn it) until `t1`."""
    return with_blob(0.0, t1)


def test_object_that_vanishes_with_nobody_seen_is_no_incident() -> None:
    # the slow background knew the blob; its going leaves a "hole" that must not read as dumping
    assert run(bg_camera(), lambda t: [], 60, blob_until(20.0)) == []


def test_ghost_ends_the_open_incident_at_once_and_starts_none() -> None:
    def script(t: float) -> list[Row]:
        return [(60.0, 200.0, 120.0, 250.0, 0.8, SUITCASE)] if t < 30 else []

    events = run(camera(background=True), script, 60, blob_until(30.0))
    assert [e.phase for e in events] == ["start", "end"]
    start, end = events
    assert start.details["path"] == "detector"
    assert end.details["ended_by"] == "removed"
    # the ghost (once the fast background settled, ~1.5 s), not the detector's LOST_S (6 s), ends it
    assert 30.0 <= end.media_s <= 32.0


def test_background_incident_ends_as_removed_when_the_spot_looks_as_before() -> None:
    events = run(bg_camera(), lambda t: [], 60, with_blob(5.0, 40.0))
    assert [e.phase for e in events] == ["start", "end"]
    assert events[1].details["ended_by"] == "removed"
    assert 40.0 <= events[1].media_s <= 41.0


def test_background_score_is_the_regions_foreground_confidence() -> None:
    (start,) = starts(run(bg_camera(), lambda t: [], 30, with_blob(5.0)))
    score = start.objects[0].score
    # the blob is 20 grey levels on a ~130 texture: |fast - slow| / 255 is about 0.43
    assert 0.3 <= score <= 0.5, score


def test_background_event_names_the_detector_class_that_covers_it() -> None:
    def script(t: float) -> list[Row]:
        return [(58.0, 198.0, 122.0, 252.0, 0.65, 4)] if t >= 5 else []  # a "chair"

    (start,) = starts(run(bg_camera(), script, 30, with_blob(5.0)))
    assert start.details["path"] == "background"
    assert start.objects[0].label == "object"
    assert start.details["detector"] == {"label": "chair", "score": 0.65}


def test_paths_background_alone_ignores_detected_bags() -> None:
    cam = camera(paths=["background"], background=None)
    assert run(cam, dumping, 80) == []  # blank frames: nothing for the background path


def test_paths_detector_alone_equals_background_false() -> None:
    a = run(camera(paths=["detector"], background=None), dumping, 40)
    b = run(camera(), dumping, 40)
    assert [(e.phase, e.media_s) for e in a] == [(e.phase, e.media_s) for e in b] != []


def test_paths_and_background_that_disagree_are_a_clear_error() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="contradicts paths"):
        camera(paths=["detector", "background"], background=False)
    with pytest.raises(ValidationError, match="paths must name"):
        camera(paths=[], background=None)


def test_vectorised_owner_lookup_picks_what_the_per_box_loop_picked() -> None:
    from edge_agent.core.geometry import box_overlap_of_first
    from edge_agent.pipeline.rules.static_store import OWNER_LOOKBACK_S, OwnerHistory

    rng = np.random.default_rng(5)
    lo = OwnerHistory()
    history: list[tuple[float, np.ndarray, np.ndarray]] = []
    for k in range(60):  # 60 frames of up to 4 owner boxes
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 300, (n, 2))
        boxes_ = np.hstack([xy, xy + rng.uniform(10, 80, (n, 2))]).astype(np.float32)
        history.append((k * 0.2, rng.integers(1, 9, n).astype(np.int64), boxes_))
        lo.remember(k * 0.2, history[-1][1], boxes_)
    now = 59 * 0.2
    for _ in range(50):
        x, y = rng.uniform(0, 300, 2)
        box = (float(x), float(y), float(x) + 20.0, float(y) + 20.0)
        w, h = 20.0, 20.0
        wide = np.array([[box[0] - w / 2, box[1] - h / 2, box[2] + w / 2, box[3] + h / 2]])
        best: tuple[float, float, int] | None = None
        for ts, ids, obs in history:  # the old loop, one box at a time
            for tid, obox in zip(ids.tolist(), obs, strict=True):
                cover = float(box_overlap_of_first(wide, np.array([obox]))[0, 0])
                if now - ts > OWNER_LOOKBACK_S or cover <= 0.0:
                    continue
                if best is None or (cover, ts) > best[:2]:
                    best = (cover, ts, tid)
        assert lo.owner_for(box, now) == (best[2] if best else None)


# --- an object taken away starts nothing ------------------------------------------


def with_remnant(t_put: float, t_taken: float) -> Callable[[int], np.ndarray]:
    """The dark blob from `t_put` to `t_taken`; then a fainter patch stays where it lay (the
    ground it pressed, a wet spot): a static change the slow background never saw."""

    def image(i: int) -> npt.NDArray[np.uint8]:
        t = i / FPS
        img = BASE.copy()
        if t_put <= t < t_taken:
            img[200:250, 60:120] = 20
        elif t >= t_taken:
            img[215:250, 70:110] = 60
        return img

    return image


def test_a_detected_bag_taken_away_starts_no_background_incident_where_it_lay() -> None:
    def script(t: float) -> list[Row]:
        return [(60.0, 200.0, 120.0, 250.0, 0.8, SUITCASE)] if 5 <= t < 40 else []

    events = run(camera(background=True), script, 90, with_remnant(5.0, 40.0))
    assert [(e.phase, e.details["path"]) for e in events] == [("start", "detector"), ("end", "detector")]
    assert events[1].details["ended_by"] == "removed"


def test_a_background_object_taken_away_leaves_nothing_that_fires() -> None:
    events = run(bg_camera(), lambda t: [], 90, with_remnant(5.0, 40.0))
    assert [e.phase for e in events] == ["start", "end"]
    assert events[1].details["ended_by"] == "removed"


def test_background_ids_are_positive_and_distinct_per_object() -> None:
    def image(i: int) -> npt.NDArray[np.uint8]:
        img = BASE.copy()
        if i / FPS >= 5:
            img[200:250, 20:60] = 20
            img[200:250, 120:170] = 20
        return img

    found = starts(run(bg_camera(), lambda t: [], 30, image))
    ids = sorted(e.objects[0].track_id for e in found)
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(BACKGROUND_ID_BASE < i < BACKGROUND_ID_BASE + 100 for i in ids)


# --- the owner's best view ---------------------------------------------------------


def test_the_start_names_the_owner_with_a_crop_of_their_best_view_near_the_bag() -> None:
    (start,) = starts(run(camera(), dumping, 30))
    owner = start.owner
    assert owner is not None
    assert owner.track_id == start.details["owner_track"] and owner.label == "person"
    # the person carries the bag in (t < 5) and walks off (5-12 s): seen near it while bringing it
    assert 0.0 <= owner.media_s <= 6.0
    _, y1, _, y2 = owner.xyxy
    assert (y2 - y1) == 110  # the scripted person's box, whole
    assert owner.crop.ndim == 3 and owner.crop.shape[0] >= 110 and owner.crop.shape[1] >= 40


def test_the_owner_crop_is_cut_from_the_analysed_frame() -> None:
    def image(i: int) -> npt.NDArray[np.uint8]:
        img = np.full((H, W, 3), 128, np.uint8)
        img[:, :, 2] = 200  # a red picture: the crop must be red too
        return img

    (start,) = starts(run(camera(), dumping, 30, image))
    assert start.owner is not None
    assert float(start.owner.crop[:, :, 2].mean()) == 200.0


def test_nobody_near_means_no_owner() -> None:
    def script(t: float) -> list[Row]:
        return [(190.0, 230.0, 214.0, 254.0, 0.8, SUITCASE)] if t >= 2 else []

    (start,) = starts(run(camera(), script, 20))
    assert start.owner is None and start.details["owner_track"] is None
