"""The motion gate: fewer detector runs where nothing moves, the same incidents.

The gate decides on real footage (the standing and walkway clips); the tracker's `hold`
(what a gated frame costs) on scripted boxes; and replays with `--motion-gate` must
find the incidents the golden files (made without the gate) pin.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.app.config import load_config
from edge_agent.app.wiring import camera_pipeline
from edge_agent.core.types import Detections, Frame
from edge_agent.delivery.jsonl import MemorySink
from edge_agent.pipeline.detect.models import COCO80_LABELS
from edge_agent.pipeline.detect.scripted import ScriptedDetector
from edge_agent.pipeline.gate import MotionGate
from edge_agent.pipeline.thumbnail import work_grey
from edge_agent.pipeline.track.tracker import Tracker
from tests.test_scenarios import SCENARIOS, golden, replay

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def frames(path: Path, every: int = 1) -> list[tuple[float, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    out, k = [], 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if k % every == 0:
            out.append((k / fps, img))
        k += 1
    cap.release()
    return out


def runs_of(gate: MotionGate, clip: list[tuple[float, np.ndarray]]) -> list[float]:
    return [t for t, img in clip if gate.needs_detection(img, t, work_grey(img))]


def test_a_still_street_runs_the_detector_only_at_the_refresh() -> None:
    clip = frames(SCENARIOS / "standing.mp4")  # 4 fps, a person standing still from ~10 s to ~90 s
    still = [(t, img) for t, img in clip if 20.0 <= t < 80.0]
    gate = MotionGate(max_gap_s=5.0)
    runs = runs_of(gate, still)
    gaps = np.diff(runs)
    assert len(runs) <= 60 / 5 + 3, f"{len(runs)} detector runs in 60 still seconds: {runs}"
    assert gaps.max() <= 5.0 + 1e-6, "a still scene must still be refreshed every motion_refresh_s"
    assert gate.skipped == len(still) - len(runs)


def test_the_refresh_sets_the_detector_rate_on_a_still_street() -> None:
    clip = [(t, img) for t, img in frames(SCENARIOS / "standing.mp4") if 20.0 <= t < 80.0]
    often, seldom = runs_of(MotionGate(max_gap_s=2.0), clip), runs_of(MotionGate(max_gap_s=5.0), clip)
    assert len(often) >= 2 * len(seldom) > 0, (len(often), len(seldom))


def test_people_walking_run_the_detector_on_most_frames() -> None:
    clip = frames(FIXTURES / "walkway-a.mp4", every=2)[:100]
    runs = runs_of(MotionGate(max_gap_s=5.0), clip)
    assert len(runs) >= 0.8 * len(clip), f"only {len(runs)} of {len(clip)} frames ran the detector"


def test_slow_change_adds_up_against_the_last_detector_frame() -> None:
    # a dark square grows by a few pixels a frame: each step is below the threshold against
    # the previous frame, but against the frame the detector last saw it adds up
    gate = MotionGate(max_gap_s=60.0)
    base = np.full((480, 640, 3), 128, np.uint8)
    runs = []
    for k in range(40):
        img = base.copy()
        img[100 : 100 + 4 * k, 300:340] = 20  # 40 px wide, 4 rows more per frame
        runs.append(gate.needs_detection(img, k * 0.2, work_grey(img)))
    assert runs[0] and 3 <= sum(runs[1:]) <= 20, runs
    assert not any(a and b for a, b in itertools.pairwise(runs[1:])), "one step alone is below the threshold"


# --- the tracker on gated frames --------------------------------------------------------------


def person(cx: float) -> Detections:
    return Detections([[cx - 20, 100, cx + 20, 200]], [0.9], [0])


def test_hold_waits_for_settled_tracks() -> None:
    tracker = Tracker()
    assert not tracker.hold(0.0)  # no update yet
    tracker.update(person(100), 0.0)
    assert not tracker.hold(0.2), "a tentative track needs real detections"
    for k in range(1, 4):
        tracker.update(person(100), k * 0.2)
    assert tracker.hold(1.0)
    assert not tracker.hold(0.5), "time never goes back"
    tracker.update(Detections.empty(), 1.2)  # the person is gone: the track is lost
    assert not tracker.hold(1.4)


def test_a_held_track_that_stopped_is_found_where_it_stopped() -> None:
    # walks in at 100 px/s, stops at x=300, then the gate holds for 8 s (nothing moved)
    tracker = Tracker()
    ids = []
    for k in range(11):
        out = tracker.update(person(100 + 20 * k), k * 0.2)
        ids += out.track_id.tolist() if out.track_id is not None else []
    t = 2.0
    while t < 10.0:
        t += 0.2
        assert tracker.hold(t)
    out = tracker.update(person(300), t + 0.2)
    assert out.track_id is not None and out.track_id.tolist() == [ids[-1]], "the stopped person got a new id"
    assert tracker.tracks[0].hits >= 11 + 40


# --- replays with the gate against the goldens ------------------------------------------------


def incidents(events: list[dict]) -> list[tuple[str, str, float, list[int]]]:
    return [
        (e["rule"], e["phase"], e["media_s"], [o["track_id"] for o in e["objects"]])
        for e in events
        if e["phase"] != "update"
    ]


@pytest.mark.parametrize("clip", ["dumping", "blown-away", "walk-with-bag"])
def test_the_gate_finds_what_the_golden_replay_found(clip: str, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    proc = replay(clip, "dumping.yaml", out, "--motion-gate")
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert incidents(got) == incidents(golden(clip))


def test_a_person_standing_still_is_one_loiter_incident_with_or_without_the_gate(tmp_path: Path) -> None:
    runs = {}
    for name, extra in (("plain", ()), ("gated", ("--motion-gate",))):
        out = tmp_path / f"{name}.jsonl"
        proc = replay("standing", "outdoor.yaml", out, *extra)
        assert proc.returncode == 0, proc.stderr
        runs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    loiter = [i for i in incidents(runs["plain"]) if i[0] == "loiter"]
    assert [i[1] for i in loiter] == ["start", "end"]
    assert incidents(runs["gated"]) == incidents(runs["plain"])


# --- which thumbnail the gate compares ---------------------------------------------------------


@pytest.mark.parametrize("with_left_object", [False, True])
def test_the_gate_shares_the_rules_thumbnail_only_when_a_rule_reads_it(with_left_object: bool) -> None:
    cfg = load_config(FIXTURES / "walkway.yaml")
    cam = cfg.cameras[0]
    if with_left_object:
        rule = {"id": "bag", "kind": "left_object", "zone": "path", "min_static_s": 20}
        raw = cam.model_dump(mode="json", exclude_none=True)
        cam = type(cam).model_validate(raw | {"rules": [*raw["rules"], rule]})
    pipeline = camera_pipeline(
        cfg,
        cam,
        ScriptedDetector(COCO80_LABELS, lambda i: Detections.empty()),
        MemorySink(),
        motion_gate=True,
    )
    ((t, img),) = frames(FIXTURES / "walkway-a.mp4")[:1]
    prepared = pipeline.prepare(Frame(cam.id, 0, t, 1000.0 + t, img))
    assert prepared is not None
    detected = pipeline.detect(prepared)
    if with_left_object:
        assert detected.small is not None and np.array_equal(detected.small, work_grey(detected.frame.image))
    else:
        assert detected.small is None  # the gate made its cheaper own; no rule wants the shared one
    pipeline.analyse(detected)
    assert pipeline.last_scene is not None
    shared = work_grey(detected.frame.image)
    assert np.array_equal(pipeline.last_scene.grey, shared), "rules always see the shared thumbnail"
