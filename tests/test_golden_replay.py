"""Golden replay: the real model on the walkway clips gives exactly the committed events.

The comparison leaves the JPEG encoder's bytes out (tests/golden.py). To make the
golden files again after a deliberate change: `make goldens`, then watch the
annotated videos in out/goldens/ and update fixtures/README.md (docs/maintaining.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO
from tests.golden import check_golden, updating

CLIPS = ["walkway-a", "walkway-b"]
EVENT_FIELDS = [  # every field of the contract; golden files leave out only snapshot.sha256
    "schema", "event_id", "phase", "site", "device", "camera", "rule", "kind", "severity", "zone",
    "label", "score", "objects", "started_at", "ts", "media_s", "duration_s", "snapshot",
]  # fmt: skip


def replay(clip: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "edge_agent", "replay", str(FIXTURES / f"{clip}.mp4"),
        "--config", str(FIXTURES / "walkway.yaml"), "--events", str(out), "--quiet", *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("clip", CLIPS)
def test_replay_matches_golden_file(clip: str, tmp_path: Path, model_ready: Path) -> None:
    out = tmp_path / "events.jsonl"
    evidence = tmp_path / "evidence"
    watch = ["--annotate", str(REPO / "out" / "goldens" / f"{clip}.mp4")] if updating() else []
    proc = replay(clip, out, "--evidence", str(evidence), *watch)
    assert proc.returncode == 0, proc.stderr
    check_golden(clip, out, evidence, FIXTURES / f"{clip}.events.jsonl")
    events = [json.loads(line) for line in out.read_text().splitlines()]
    starts = [e for e in events if e["phase"] == "start"]
    # one evidence picture per incident, named by its event id
    assert sorted(p.stem for p in evidence.glob("*.jpg")) == sorted(e["event_id"] for e in starts)


def test_two_replays_are_byte_identical(tmp_path: Path, model_ready: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert replay("walkway-b", a).returncode == 0
    assert replay("walkway-b", b).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size > 0


def _golden(clip: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{clip}.events.jsonl").read_text().splitlines()]


def test_golden_events_carry_every_contract_field() -> None:
    for clip in CLIPS:
        for ev in _golden(clip):
            assert list(ev)[: len(EVENT_FIELDS)] == EVENT_FIELDS
            for obj in ev["objects"]:
                assert all(0.0 <= v <= 1.0 for v in obj["bbox"])
            if ev["phase"] == "start":
                assert ev["snapshot"]["topic"].endswith("/snapshots/" + ev["event_id"])
                assert "sha256" not in ev["snapshot"]  # the encoder's bytes are not pinned


def _count(clip: str, rule: str, phase: str = "start") -> int:
    return sum(1 for e in _golden(clip) if e["rule"] == rule and e["phase"] == phase)


# What a person watching the annotated clips saw (fixtures/README.md has the details).
@pytest.mark.parametrize(
    ("clip", "rule", "expected"),
    [
        ("walkway-a", "crossing-in", 6),
        ("walkway-a", "crossing-out", 6),
        ("walkway-b", "crossing-in", 6),
        ("walkway-b", "crossing-out", 6),
        ("walkway-a", "on-lawn", 0),
        ("walkway-b", "on-lawn", 1),
        ("walkway-a", "lawn-dwell", 0),
        ("walkway-b", "lawn-dwell", 2),
        ("walkway-a", "path-crowd", 1),
        ("walkway-b", "path-crowd", 1),
    ],
)
def test_golden_counts_match_what_was_watched(clip: str, rule: str, expected: int) -> None:
    assert _count(clip, rule) == expected


def test_every_incident_that_starts_also_ends() -> None:
    for clip in CLIPS:
        events = _golden(clip)
        for ev in events:
            if ev["phase"] == "start" and ev["kind"] != "line_cross":
                assert any(e["event_id"] == ev["event_id"] and e["phase"] == "end" for e in events)


def test_annotated_video_is_written(tmp_path: Path, model_ready: Path) -> None:
    import cv2

    video = tmp_path / "annotated.mp4"
    proc = replay("walkway-a", tmp_path / "e.jsonl", "--annotate", str(video))
    assert proc.returncode == 0, proc.stderr
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert frames == 200  # 40 s at detect.fps 5
