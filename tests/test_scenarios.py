"""Staged village scenarios: the real model on each clip gives exactly the golden events,
and the golden events match the ground truth in fixtures/scenarios/README.md.

The comparison leaves the JPEG encoder's bytes out (tests/golden.py). To make the
golden files again after a deliberate change: `make goldens`, then watch the annotated
videos in out/goldens/ and check the table (docs/maintaining.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES, REPO
from tests.golden import check_golden, updating

SCENARIOS = FIXTURES / "scenarios"
ALERT_SLACK_S = 5.0


@dataclass(frozen=True)
class Truth:
    clip: str
    config: str
    rule: str
    incidents: int
    zone: str
    from_s: float | None


def ground_truth() -> list[Truth]:
    rows: list[Truth] = []
    lines = (SCENARIOS / "README.md").read_text(encoding="utf-8").splitlines()
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or cells[0] in ("clip", "") or set(cells[0]) <= {"-"}:
            continue
        clip, config, rule, incidents, zone, from_s = cells[:6]
        rows.append(Truth(clip, config, rule, int(incidents), zone, None if from_s == "-" else float(from_s)))
    return rows


TRUTH = ground_truth()
CLIPS = sorted({(t.clip, t.config) for t in TRUTH})


def replay(clip: str, config: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "edge_agent", "replay", str(SCENARIOS / f"{clip}.mp4"),
        "--config", str(SCENARIOS / config), "--events", str(out), "--quiet", *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def golden(clip: str) -> list[dict[str, Any]]:
    path = SCENARIOS / f"{clip}.events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_limit(config: str, rule_id: str) -> float:
    cfg = yaml.safe_load((SCENARIOS / config).read_text())
    rule = next(r for r in cfg["cameras"][0]["rules"] if r["id"] == rule_id)
    return float(rule.get("min_static_s", rule.get("min_dwell_s", 0.0))) + ALERT_SLACK_S


def test_ground_truth_table_is_read() -> None:
    assert len(TRUTH) >= 15
    outdoor = {"cloud-shadow", "exposure-drift", "night-ir", "camera-shake", "noisy"}
    positives = {"dumping", "dumping-unknown", "blown-away", "shadow-dump", "vendor"} | outdoor
    assert {t.clip for t in TRUTH if t.incidents > 0} == positives


@pytest.mark.parametrize(("clip", "config"), CLIPS)
def test_replay_matches_golden_file(clip: str, config: str, tmp_path: Path, model_ready: Path) -> None:
    out, evidence = tmp_path / "events.jsonl", tmp_path / "evidence"
    watch = ["--annotate", str(REPO / "out" / "goldens" / f"{clip}.mp4")] if updating() else []
    proc = replay(clip, config, out, "--evidence", str(evidence), *watch)
    assert proc.returncode == 0, proc.stderr
    check_golden(clip, out, evidence, SCENARIOS / f"{clip}.events.jsonl")


@pytest.mark.parametrize("clip", sorted({t.clip for t in TRUTH}))
def test_no_event_carries_a_made_up_score(clip: str) -> None:
    """Every score is measured: a detector confidence or a background region's foreground confidence."""
    for e in golden(clip):
        if e["kind"] != "left_object":
            continue
        assert e["score"] == e["objects"][0]["score"]
        if e["details"]["path"] == "background":
            assert e["label"] == "object"
            assert 28 / 255 <= e["score"] < 1.0, e["score"]  # DIFF_LEVEL/255 is the least that counts


@pytest.mark.parametrize("truth", TRUTH, ids=lambda t: f"{t.clip}:{t.rule}")
def test_golden_events_match_ground_truth(truth: Truth) -> None:
    events = [e for e in golden(truth.clip) if e["rule"] == truth.rule]
    starts = [e for e in events if e["phase"] == "start"]
    assert len(starts) == truth.incidents, [(e["phase"], e["media_s"]) for e in events]
    for start in starts:
        assert start["zone"] == truth.zone
        assert any(e["phase"] == "end" and e["event_id"] == start["event_id"] for e in events)
        assert truth.from_s is not None
        alert_after = start["media_s"] - truth.from_s
        assert 0.0 <= alert_after <= wait_limit(truth.config, truth.rule), alert_after
        if start["kind"] == "left_object":
            assert start["details"]["owner_track"] is not None
            assert start["details"]["path"] in ("detector", "background")
            (end,) = [e for e in events if e["phase"] == "end" and e["event_id"] == start["event_id"]]
            assert end["details"]["ended_by"] == "removed"  # each staged bag is taken away
        else:
            assert start["objects"][0]["label"] == "person"
            assert start["details"]["items"]
            assert len(start["objects"]) >= 2


def _truth_boxes() -> dict[str, tuple[int, int, int, int]]:
    """Where `make_scenarios.py` pasted each left object (`boxes.json`, written with the clips)."""
    data = json.loads((SCENARIOS / "boxes.json").read_text(encoding="utf-8"))
    return {clip: (b[0], b[1], b[2], b[3]) for clip, b in data["boxes"].items()}


def _iou(a: list[float], b: tuple[int, int, int, int]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


BOXES = _truth_boxes()
MIN_BOX_IOU = 0.5


@pytest.mark.parametrize("clip", sorted(BOXES))
def test_background_box_is_the_objects_extent(clip: str) -> None:
    """The background path's box covers the left object as pasted (`boxes.json`), including the
    dark bag on the wall's shadow (`shadow-dump`) and on the cobbles of every other clip."""
    width, height = 640, 480
    starts = [
        e
        for e in golden(clip)
        if e["kind"] == "left_object" and e["phase"] == "start" and e["details"]["path"] == "background"
    ]
    assert starts, "the background path fired on this clip (dumping-bg)"
    for e in starts:
        x1, y1, x2, y2 = e["objects"][0]["bbox"]
        iou = _iou([x1 * width, y1 * height, x2 * width, y2 * height], BOXES[clip])
        assert iou >= MIN_BOX_IOU, (e["rule"], e["media_s"], round(iou, 2))


@pytest.mark.parametrize("clip", sorted({t.clip for t in TRUTH if t.incidents > 0}))
def test_an_object_taken_away_starts_no_incident(clip: str) -> None:
    """Each staged left object is taken away (or blown away) before the clip ends: once its
    incident ended, no rule starts another at the place it lay."""
    for rule in {e["rule"] for e in golden(clip) if e["kind"] == "left_object"}:
        events = [e for e in golden(clip) if e["rule"] == rule]
        ends = [e["media_s"] for e in events if e["phase"] == "end" and e["details"].get("ended_by")]
        assert ends, (rule, "the object's going ends its incident")
        late = [e["media_s"] for e in events if e["phase"] == "start" and e["media_s"] > min(ends)]
        assert late == [], (rule, late)


@pytest.mark.parametrize("clip", sorted({t.clip for t in TRUTH if t.incidents > 0 and t.rule == "dumping"}))
def test_a_dumping_event_names_its_owner_seen_near_the_object(clip: str) -> None:
    """The person who brought the object, at their best view near it, around the moment they put it
    down (the truth table's from_s), with a crop (`<event_id>-owner.jpg` in replay); the clip runs
    from before they came until after they left and the alert."""
    (truth,) = [t for t in TRUTH if t.clip == clip and t.rule == "dumping"]
    assert truth.from_s is not None
    for e in golden(clip):
        if e["kind"] != "left_object":
            continue
        owner = e["owner"]
        assert owner["track_id"] == e["details"]["owner_track"]
        assert owner["label"] == "person"
        assert truth.from_s - 8.0 <= owner["media_s"] <= truth.from_s + 6.0, owner["media_s"]
        assert owner["crop"]["width"] >= 32 and owner["crop"]["height"] >= 96
        assert e["alarm_type"] == 3
        if e["phase"] == "start":
            # the carrier walks in at most 8 s before the drop and is out of the picture 6 s after it
            clip = e["clip"]
            assert clip["start_media_s"] <= max(0.0, truth.from_s - 8.0), clip
            assert clip["end_media_s"] >= max(truth.from_s + 6.0, e["media_s"]), clip
