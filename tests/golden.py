"""Golden replays that pin what the project decides, not a third-party encoder's bytes.

A golden event file is the replay's event file with the fields left out that hash or
count a third party's bytes: the snapshot's and the owner crop's `sha256` (the JPEG bytes
OpenCV's encoder writes; another release writes other bytes for the same picture) and
the clip's `sha256`, `bytes` and `chunks` (FFmpeg's muxer). Everything the
rules decide (ids, phases, times, boxes, scores as written, labels, details)
stays compared byte for byte.

What a snapshot shows is compared instead: each evidence picture, made small
and grey, against a committed reference picture (`fixtures/snapshots/<clip>/
<event_id>.png`), with a tolerance that a JPEG encoder change stays far inside
and a missing or moved box does not, leaving out the letters of the text labels
(measured in docs/maintaining.md). The
`sha256` itself is still checked: it must be the hash of the evidence file
written for the event (`<event_id>.jpg`, `<event_id>-owner.jpg`), as a platform checks it.

`EDGE_AGENT_UPDATE_GOLDEN=1` (what `make goldens` sets) writes the golden files
and reference pictures from this run instead of comparing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.conftest import FIXTURES

SNAPSHOT_REFS = FIXTURES / "snapshots"
REF_WIDTH = 320  # reference pictures are this wide, grey (chroma is where encoders differ most)
PIXEL_LEVEL = 24  # a pixel whose grey level is off by more than this "differs"
MAX_DIFFERING = 0.0002  # share of pixels that may differ (15 of 76,800); encoder changes: 0
MAX_MEAN = 2.0  # mean grey-level difference; encoder changes measured at 0.2 (q85) to 1.1 (q60)


def updating() -> bool:
    return bool(os.environ.get("EDGE_AGENT_UPDATE_GOLDEN"))


def without_encoder_bytes(events_text: str) -> str:
    """The event lines with `snapshot.sha256` left out, otherwise written as the replay writes them."""
    out = []
    for line in events_text.splitlines():
        event = json.loads(line)
        if event.get("snapshot"):
            event["snapshot"].pop("sha256", None)
        if (event.get("owner") or {}).get("crop"):
            event["owner"]["crop"].pop("sha256", None)
        if event.get("clip"):  # the muxer's bytes: FFmpeg's, not the project's
            for key in ("sha256", "bytes", "chunks"):
                event["clip"].pop(key, None)
        out.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    return "".join(f"{line}\n" for line in out)


def small_grey(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    size = (REF_WIDTH, round(h * REF_WIDTH / w))
    return np.asarray(cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY))


@dataclass(frozen=True)
class PictureDiff:
    mean: float
    differing: float  # share of pixels off by more than PIXEL_LEVEL

    @property
    def ok(self) -> bool:
        return self.mean <= MAX_MEAN and self.differing <= MAX_DIFFERING


def text_labels(grey: np.ndarray) -> np.ndarray:
    """Where the picture's text labels are: the black boxes the captions are written on.

    OpenCV's font renderer is a third party's too (5.1 draws the glyphs, and so
    the label boxes, a few pixels wider than 5.0), so the letters are left out
    of the comparison; the boxes, zones, lines and masks they label are not.
    """
    dark = (grey < 20).astype(np.uint8)
    filled = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))  # the glyphs inside
    return np.asarray(cv2.dilate(filled, np.ones((3, 3), np.uint8)) > 0)


def compare_picture(picture: np.ndarray, reference: np.ndarray) -> PictureDiff:
    small = small_grey(picture)
    if small.shape != reference.shape:
        return PictureDiff(float("inf"), 1.0)
    diff = cv2.absdiff(small, reference)
    compared = ~(text_labels(small) | text_labels(reference))
    return PictureDiff(float(diff.mean()), float(((diff > PIXEL_LEVEL) & compared).mean()))


def check_golden(clip: str, events_path: Path, evidence_dir: Path, golden_path: Path) -> None:
    """Assert the replay's events and pictures match the golden ones (or write them when updating)."""
    text = events_path.read_text(encoding="utf-8")
    events: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines()]
    starts = [e for e in events if e["phase"] == "start" and e.get("snapshot")]
    # integrity, as a platform checks it: the sha256 in the event is the evidence file's
    for ev in starts:
        jpeg = (evidence_dir / f"{ev['event_id']}.jpg").read_bytes()
        assert hashlib.sha256(jpeg).hexdigest() == ev["snapshot"]["sha256"], ev["event_id"]
    for ev in events:  # and the owner crop's: every phase that names it
        crop = (ev.get("owner") or {}).get("crop")
        if crop:
            jpeg = (evidence_dir / f"{ev['event_id']}-owner.jpg").read_bytes()
            assert hashlib.sha256(jpeg).hexdigest() == crop["sha256"], ev["event_id"]
        if ev.get("clip"):
            mp4 = (evidence_dir / f"{ev['event_id']}.mp4").read_bytes()
            assert hashlib.sha256(mp4).hexdigest() == ev["clip"]["sha256"], ev["event_id"]
            assert len(mp4) == ev["clip"]["bytes"], ev["event_id"]
    refs = SNAPSHOT_REFS / clip
    if updating():
        golden_path.write_text(without_encoder_bytes(text), encoding="utf-8")
        for old in refs.glob("*.png"):
            old.unlink()
        if starts:
            refs.mkdir(parents=True, exist_ok=True)
        for ev in starts:
            picture = cv2.imread(str(evidence_dir / f"{ev['event_id']}.jpg"))
            cv2.imwrite(str(refs / f"{ev['event_id']}.png"), small_grey(picture))
    assert without_encoder_bytes(text) == golden_path.read_text(encoding="utf-8"), (
        f"replay of {clip} differs from {golden_path.name}"
    )
    assert sorted(p.stem for p in refs.glob("*.png")) == sorted(e["event_id"] for e in starts)
    for ev in starts:
        picture = cv2.imread(str(evidence_dir / f"{ev['event_id']}.jpg"))
        reference = cv2.imread(str(refs / f"{ev['event_id']}.png"), cv2.IMREAD_GRAYSCALE)
        diff = compare_picture(picture, reference)
        assert diff.ok, f"{clip}: the snapshot of {ev['event_id']} shows something else: {diff}"
