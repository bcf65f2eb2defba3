"""Replay's read-ahead: decoding and detection on a second thread change nothing in the events."""

from __future__ import annotations

import contextlib
import threading

import pytest

from edge_agent.app.config import load_config
from edge_agent.app.replay import detected_ahead, run_replay
from edge_agent.app.wiring import camera_pipeline
from edge_agent.core.types import Detections, Frame
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


class StagedRecorder:
    """A staged detector (`prepare`, then `detect_prepared`) that notes which thread ran each half."""

    def __init__(self) -> None:
        self.labels = COCO80_LABELS
        self.threads: dict[str, set[str]] = {"prepare": set(), "detect_prepared": set(), "detect": set()}
        self.calls = 0

    def prepare(self, image: object) -> int:
        self.threads["prepare"].add(threading.current_thread().name)
        return self.calls

    def detect_prepared(self, prepared: object) -> Detections:
        self.threads["detect_prepared"].add(threading.current_thread().name)
        self.calls += 1
        return walker(self.calls - 1)

    def detect(self, image: object) -> Detections:
        self.threads["detect"].add(threading.current_thread().name)
        return self.detect_prepared(self.prepare(image))


def test_the_model_thread_gets_frames_prepared_by_the_decoder_thread() -> None:
    """The detector's input is made beside decoding, so the model's thread runs the model only,
    and the events are those of the same detector run in one thread."""
    cfg = load_config(FIXTURES / "walkway.yaml")
    cam = cfg.cameras[0]
    one_thread = MemorySink()
    pipeline = camera_pipeline(cfg, cam, StagedRecorder(), one_thread)
    with contextlib.closing(FileSource(str(CLIP), cam.id, 0.0)) as source:
        for frame in source:
            pipeline.process(frame)
    pipeline.close()

    staged = StagedRecorder()
    ahead = MemorySink()
    run_replay(cfg, cam.id, [str(CLIP)], staged, ahead)
    expected = {"prepare": {"replay-decode"}, "detect_prepared": {"replay-detect"}, "detect": set()}
    assert staged.threads == expected
    assert staged.calls == 200
    assert one_thread.events and ahead.events == one_thread.events


def test_a_frame_the_gate_skips_gets_no_model_input() -> None:
    cfg = load_config(FIXTURES / "walkway.yaml")
    cam = cfg.cameras[0]
    staged = StagedRecorder()
    pipeline = camera_pipeline(cfg, cam, staged, MemorySink(), motion_gate=True)
    with contextlib.closing(FileSource(str(CLIP), cam.id, 0.0)) as source:
        first = next(iter(source))
    same = Frame(first.camera_id, 2, first.media_s + 0.2, first.wall_ts + 0.2, first.image)
    prepared = [pipeline.prepare(f) for f in (first, same)]
    assert [p is not None and p.fresh for p in prepared] == [True, False]
    assert prepared[0] is not None and prepared[0].model_input is not None
    assert prepared[1] is not None and prepared[1].model_input is None
    detected = [pipeline.detect(p) for p in prepared if p is not None]
    assert [d.fresh for d in detected] == [True, False] and staged.calls == 1
    assert detected[1].dets is detected[0].dets  # the skipped frame reuses the first frame's detections


def test_opencv_runs_without_its_pool_during_a_replay_and_gets_its_threads_back() -> None:
    import cv2

    seen: list[int] = []

    def looking(i: int) -> Detections:
        seen.append(cv2.getNumThreads())
        return Detections.empty()

    cfg = load_config(FIXTURES / "walkway.yaml")
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        run_replay(
            cfg, cfg.cameras[0].id, [str(CLIP)], ScriptedDetector(COCO80_LABELS, looking), MemorySink()
        )
        after = cv2.getNumThreads()
    finally:
        cv2.setNumThreads(before)
    assert seen and set(seen) == {1}
    assert after == 2


class CountingCapture:
    """A `cv2.VideoCapture` that counts the pictures converted (`retrieve`)."""

    def __init__(self, cap: object) -> None:
        self.cap = cap
        self.retrieved = 0

    def grab(self) -> bool:
        return bool(self.cap.grab())  # type: ignore[attr-defined]

    def retrieve(self) -> object:
        self.retrieved += 1
        return self.cap.retrieve()  # type: ignore[attr-defined]

    def read(self) -> object:
        self.retrieved += 1
        return self.cap.read()  # type: ignore[attr-defined]

    def release(self) -> None:
        self.cap.release()  # type: ignore[attr-defined]


def test_a_paced_file_source_converts_only_the_frames_it_hands_over() -> None:
    """Replay's source at `detect.fps` 5 on a 10 fps clip: every frame decoded and counted,
    every 2nd handed over, only those converted, each the same picture as unpaced."""
    import numpy as np

    with contextlib.closing(FileSource(str(CLIP), "walkway", 0.0)) as whole:
        every = list(whole)
    with contextlib.closing(FileSource(str(CLIP), "walkway", 0.0, detect_fps=5)) as paced:
        counting = CountingCapture(paced._cap)
        paced._cap = counting  # type: ignore[assignment]
        handed = list(paced)
    assert [f.index for f in handed] == list(range(0, 400, 2))
    assert paced.frames_read == whole.frames_read == len(every) == 400
    assert counting.retrieved == 199  # frame 0 was read whole when the file was opened
    for frame in handed:
        assert frame.media_s == every[frame.index].media_s
        assert np.array_equal(frame.image, every[frame.index].image)
