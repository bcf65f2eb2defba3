"""Evidence clips cut by replay from the file: the act on video, playable, the same every run,
privacy masks burned in where a camera has them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.core.config import RuleClipConfig
from edge_agent.core.masks import PrivacyMasks
from edge_agent.core.types import OwnerSighting
from edge_agent.pipeline.clips import ClipSettings, FileClipCutter, clip_window
from tests.conftest import FIXTURES, REPO

SCENARIOS = FIXTURES / "scenarios"


def owner(arrived: float, left: float) -> OwnerSighting:
    crop = np.zeros((2, 2, 3), np.uint8)
    return OwnerSighting(1, "person", (0, 0, 10, 30), (640, 480), 5.0, 0.0, crop, 0.9, arrived, left)


@pytest.mark.parametrize(
    ("kind", "since", "alert", "who", "parts"),
    [
        pytest.param("left_object", 8.0, 29.0, owner(1.0, 12.0), [(0.0, 39.0)], id="from-the-owner"),
        pytest.param("left_object", 30.0, 60.0, owner(26.0, 34.0), [(16.0, 70.0)], id="pre_s-before-owner"),
        pytest.param("dwell", 30.0, 60.0, None, [(20.0, 70.0)], id="other-kinds-from-the-start"),
        pytest.param("left_object", 100.0, 260.0, owner(90.0, 110.0), [(80.0, 180.0), (250.0, 270.0)],
                     id="longer-than-max_s-keeps-both-ends"),
    ],
)  # fmt: skip
def test_clip_window(
    kind: str, since: float, alert: float, who: OwnerSighting | None, parts: list[tuple[float, float]]
) -> None:
    assert clip_window(kind, since, alert, who, ClipSettings(10.0, 10.0, 120.0)) == parts


def test_a_rules_clip_settings_override_the_cameras_and_can_turn_clips_off() -> None:
    base = ClipSettings(10.0, 10.0, 120.0)
    assert base.for_rule(None) == base
    mine = base.for_rule(RuleClipConfig(post_s=30.0))
    assert (mine.pre_s, mine.post_s, mine.max_s, mine.enabled) == (10.0, 30.0, 120.0, True)
    assert clip_window("dwell", 30.0, 60.0, None, mine) == [(20.0, 90.0)]
    assert base.for_rule(RuleClipConfig(enabled=False)).enabled is False


def probe(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration,format_name:stream=codec_name,pix_fmt",
         "-of", "default=nw=1", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines())


def test_replay_cuts_the_dumping_clip_from_before_the_owner_came_to_the_alert(
    tmp_path: Path, model_ready: Path
) -> None:
    out, evidence = tmp_path / "events.jsonl", tmp_path / "evidence"
    clip, config = str(SCENARIOS / "dumping-unknown.mp4"), str(SCENARIOS / "dumping.yaml")
    cmd = [sys.executable, "-m", "edge_agent", "replay", clip, "--config", config,
           "--events", str(out), "--evidence", str(evidence), "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    starts = [e for e in map(json.loads, out.read_text().splitlines()) if e["phase"] == "start"]
    assert starts
    for e in starts:
        clip, who = e["clip"], e["owner"]
        data = (evidence / f"{e['event_id']}.mp4").read_bytes()
        assert hashlib.sha256(data).hexdigest() == clip["sha256"] and len(data) == clip["bytes"]
        # the person walks in from the right edge at 0 s, drops the bag at 8 s, is gone at 14 s
        assert clip["start_media_s"] <= 0.5 and clip["start_media_s"] <= who["media_s"]
        assert clip["end_media_s"] >= 14.0 and clip["end_media_s"] >= e["media_s"]
        info = probe(evidence / f"{e['event_id']}.mp4")
        assert info["codec_name"] == "h264" and info["pix_fmt"] == "yuv420p"
        assert abs(float(info["duration"]) - clip["duration_s"]) < 0.01
        assert data.find(b"moov") < data.find(b"mdat")  # faststart: a browser plays it while loading


def test_cutting_twice_gives_the_same_bytes() -> None:
    cutter = FileClipCutter(SCENARIOS / "dumping-unknown.mp4", PrivacyMasks([]), 4.0)
    a, b = cutter.cut([(3.0, 20.0)]), cutter.cut([(3.0, 20.0)])
    assert a is not None and b is not None and a.data == b.data
    assert a.start_media_s == 0.0  # stream copy starts at the key frame before 3 s (one each 12.5 s)


MASK = [[0.1, 0.6], [0.5, 0.6], [0.5, 0.95], [0.1, 0.95]]  # over the spot the bag lies on


def test_a_masked_cameras_clip_is_black_inside_the_mask_in_every_frame(tmp_path: Path) -> None:
    cutter = FileClipCutter(SCENARIOS / "dumping-unknown.mp4", PrivacyMasks([MASK]), 4.0)
    clip = cutter.cut([(6.0, 12.0), (28.0, 30.0)])
    assert clip is not None
    again = cutter.cut([(6.0, 12.0), (28.0, 30.0)])
    assert again is not None and again.data == clip.data  # re-encoded the same on every run
    path = tmp_path / "masked.mp4"
    path.write_bytes(clip.data)
    cap = cv2.VideoCapture(str(path))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    inside = np.zeros((h, w), np.uint8)
    poly = np.array([[x * w, y * h] for x, y in MASK], np.int32)
    cv2.fillPoly(inside, [poly], 255)
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8)) > 0  # chroma is shared by 2x2 pixels at the edge
    frames = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames += 1
        assert int(image[inside].max()) <= 16, frames  # black, up to the encoder's rounding
        assert float(image[~inside].mean()) > 40  # the rest of the street is there
    assert frames == 25 + 9  # 6-12 s and 28-30 s at 4 fps, both ends included
    assert data_is_h264_faststart(clip.data)


def data_is_h264_faststart(data: bytes) -> bool:
    return b"avc1" in data[:4096] and data.find(b"moov") < data.find(b"mdat")
