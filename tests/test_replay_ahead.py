"""Replay's read-ahead: decoding and detection on a second thread change nothing in the events."""

from __future__ import annotations

import pytest

from edge_agent.app.config import load_config
from edge_agent.app.replay import detected_ahead, run_replay
from edge_agent.app.wiring import camera_pipeline
from edge_agent.core.types import Detections
from edge_agent.delivery.jsonl import MemorySink
from edge_agent.pipeline.detect.models import COCO80_LABELS
from edge_agent.pipeline.detect.scripted import ScriptedDetector, boxes
from edge_agent.sources.file import FileSource
from tests.conftest import FIXTURES

CLIP = FIXTURES / "walkway-a.mp4"


def walker(i: int) -> Detections:
    """A person walking right along the path, across the line, a new one every 60 calls."""
    x = 20 + (i % 60) * 12
    return boxes([(x, 240, x + 40, 340, 0.9, 0)])


def test_read_ahead_replay_emits_what_one_thread_does() -> None:
    cfg = load_config(FIXTURES / "walkway.yaml")
    cam = cfg.cameras[0]
    one_thread = MemorySink()
    pipeline = camera_pipeline(cfg, cam, ScriptedDetector(COCO80_LABELS, walker), one_thread)
    source = FileSource(str(CLIP), cam.id, 0.0)
    try:
        for frame in source:
            pipeline.process(frame)
    finally:
        source.close()
    pipeline.close()

    ahead = MemorySink()
    result = run_replay(cfg, cam.id, [str(CLIP)], ScriptedDetector(COCO80_LABELS, walker), ahead)
    assert one_thread.events, "the script must make incidents, or the comparison says nothing"
    assert ahead.events == one_thread.events
    assert result.frames_read == 400 and result.frames_analysed == 200


def test_a_detector_failure_is_raised_at_its_frame() -> None:
    cfg = load_config(FIXTURES / "walkway.yaml")
    cam = cfg.cameras[0]

    def failing(i: int) -> Detections:
        if i == 7:
            raise RuntimeError("the detector broke on purpose")
        return Detections.empty()

    pipeline = camera_pipeline(cfg, cam, ScriptedDetector(COCO80_LABELS, failing), MemorySink())
    seen = []
    source = FileSource(str(CLIP), cam.id, 0.0)
    try:
        with pytest.raises(RuntimeError, match="on purpose"):
            for frame, detected in detected_ahead(source, pipeline):
                seen.append((frame.index, detected is not None))
    finally:
        source.close()
    assert sum(analysed for _, analysed in seen) == 7  # calls 0-6 came through, in order
    assert [i for i, _ in seen] == list(range(len(seen)))
