"""`edge-agent replay`: recorded videos through the same pipeline as live, as fast as it goes.

Three threads per video, so decoding, the detector and the tracker and rules
overlap, each running one stage of `CameraPipeline.process` on the frames in their
order: one decodes and prepares (`prepare`: pacing, masks, thumbnail, motion gate, the
model's input), one runs the model (`detect`), the calling thread runs the rest
(`analyse`: tracker, rules, evidence, events). The stages share no state and every
frame passes through each in order, so the events are the same as one thread running
`process`. The model's thread does nothing but the model: it sets the pace.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import cv2

from edge_agent.app.opencv_threads import opencv_without_pool
from edge_agent.app.wiring import camera_pipeline
from edge_agent.core.config import Config
from edge_agent.core.sink import EventSink
from edge_agent.core.types import Event, Frame
from edge_agent.pipeline.camera import CameraPipeline, Detected
from edge_agent.pipeline.clips import ClipSettings, FileClipCutter
from edge_agent.pipeline.detect import Detector
from edge_agent.pipeline.evidence import EvidenceStore
from edge_agent.sources import SourceError
from edge_agent.sources.file import FileSource

logger = logging.getLogger(__name__)

GIL_SWITCH_S = 0.001  # see _quick_gil_handoff


@dataclass
class ReplayResult:
    videos: int = 0
    frames_read: int = 0
    frames_analysed: int = 0
    corrupt_frames: int = 0
    events: int = 0
    outputs: list[str] = field(default_factory=list)
    # (video, first frame, last frame, fps) of every span that could not be decoded
    lost_spans: list[tuple[str, int, int, float]] = field(default_factory=list)


class Progress(Protocol):
    """A progress display for one video (the CLI's tqdm bar); frames read, one `update` each."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


class Annotator:
    """Writes the annotated frames of a replay into one MP4 file."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, img: object) -> None:
        import numpy as np

        frame = np.asarray(img)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise SourceError(f"{self.path}: cannot write the annotated video")
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


READ_AHEAD = 2  # items each stage may run ahead of the next: frames are 1.3 MB each

T = TypeVar("T")


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def ahead(items: Iterable[T], name: str, depth: int = READ_AHEAD) -> Generator[T, None, None]:
    """The items of `items`, in order, produced by a thread of their own up to `depth` ahead.

    An exception raised while producing is raised here, at its place in the sequence;
    leaving the loop early stops the thread.
    """
    slots: queue.Queue[T | _End] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            put(_End(err))
            return
        put(_End())

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()


def detected_ahead(source: FileSource, pipeline: CameraPipeline) -> Iterator[tuple[Frame, Detected | None]]:
    """(frame, its `pipeline.detect` result or None between detection slots) for every frame
    of `source`, in order: one thread decodes and runs `prepare`, a second runs `detect`, while
    the caller runs `analyse`; an exception in either is raised here, at its frame."""
    decoded = ahead(((frame, pipeline.prepare(frame)) for frame in source), "replay-decode")
    detected = ahead(
        ((frame, None if prepared is None else pipeline.detect(prepared)) for frame, prepared in decoded),
        "replay-detect",
    )
    try:
        yield from detected
    finally:
        # Outer stage first (its thread reads the inner one), then the decoder, so no
        # thread still reads the source when the caller closes it.
        detected.close()
        decoded.close()


def run_replay(
    cfg: Config,
    camera_id: str,
    videos: Sequence[str],
    detector: Detector,
    sink: EventSink,
    *,
    evidence_dir: str | None = None,
    annotate_path: str | None = None,
    start_wall_ts: float = 0.0,
    on_event: Callable[[Event], None] | None = None,
    motion_gate: bool = False,
    progress: Callable[[str, int], Progress] | None = None,
) -> ReplayResult:
    """Run each video in turn as `camera_id`; each starts with fresh tracker and rule state.

    `progress(path, frame_count)` makes a display per video that is told of every frame read.

    Raises SourceError (one line) for a missing or unreadable video, before any
    output is written for it.
    """
    with _quick_gil_handoff(), opencv_without_pool():
        return _run_replay(
            cfg, camera_id, videos, detector, sink, evidence_dir, annotate_path, start_wall_ts, on_event,
            motion_gate, progress,
        )  # fmt: skip


@contextlib.contextmanager
def _quick_gil_handoff(interval_s: float = GIL_SWITCH_S) -> Iterator[None]:
    """CPython's GIL switch interval lowered while a replay runs (5 ms by default).

    The rules' thread is pure Python and holds the GIL; each time the detector's thread
    comes back from `session.run` (which releases it) it waits for its turn, up to one
    interval, a few times per frame. At 1 ms instead of 5 the detector's thread waits
    less and replay of walkway-a with a left_object rule ran 8 % faster (7.1 vs 7.8 s,
    3 interleaved runs on 2 cores); 0.2 ms gained nothing more.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, interval_s))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _run_replay(
    cfg: Config,
    camera_id: str,
    videos: Sequence[str],
    detector: Detector,
    sink: EventSink,
    evidence_dir: str | None,
    annotate_path: str | None,
    start_wall_ts: float,
    on_event: Callable[[Event], None] | None,
    motion_gate: bool,
    progress: Callable[[str, int], Progress] | None,
) -> ReplayResult:
    cam = cfg.camera(camera_id)
    evidence = EvidenceStore(evidence_dir) if evidence_dir else None
    annotator = Annotator(annotate_path, cam.detect.fps) if annotate_path else None
    result = ReplayResult()
    # Open all first, to fail before any output; each hands over only the frames due at
    # `detect.fps` and converts no other to a picture (sources/file.py).
    sources = [FileSource(v, cam.id, start_wall_ts, cam.detect.fps) for v in videos]
    try:
        for source in sources:
            pipeline = camera_pipeline(cfg, cam, detector, sink, evidence, motion_gate=motion_gate)
            if evidence is not None:  # clips are evidence: cut from the file, kept beside the snapshots
                pipeline.clips = FileClipCutter(source.path, pipeline.masks, source.fps)
                clip = cfg.evidence.clip
                pipeline.clip_settings = ClipSettings(clip.pre_s, clip.post_s, clip.max_s)
            bar = progress(str(source.path), source.frame_count) if progress is not None else None
            shown = 0  # frames read that the display was told of
            for _frame, detected in detected_ahead(source, pipeline):
                if bar is not None:
                    read = source.frames_read  # the decoding thread's count, a few frames ahead
                    bar.update(read - shown)
                    shown = read
                if detected is None:
                    continue
                events = pipeline.analyse(detected)
                if annotator is not None:
                    annotator.write(pipeline.annotate())
                for ev in events:
                    if on_event:
                        on_event(ev)
            if bar is not None:
                bar.update(source.frames_read - shown)
                bar.close()
            for ev in pipeline.close():
                if on_event:
                    on_event(ev)
            result.videos += 1
            result.frames_read += source.frames_read
            result.frames_analysed += pipeline.frames_analysed
            result.events += pipeline.events_emitted
            result.corrupt_frames += source.corrupt_frames
            result.lost_spans += [(str(source.path), a, b, source.fps) for a, b in source.lost_spans]
    finally:
        for source in sources:
            source.close()
        if annotator is not None:
            annotator.close()
    return result
