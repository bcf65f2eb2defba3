"""Recorded video: frames in order, time taken from the video (index / fps).

Because time comes from the file, never from the wall clock, two replays of
one clip see identical timestamps and give byte-identical events.

A damaged region (a bad sector, a recording cut by a power loss) makes reads fail for a
while; FFmpeg's demuxer moves on through the packets meanwhile, and decoding resumes at the
next keyframe after the damage. So failed reads are counted as lost frames (each failed read
is one frame of the file, which keeps the time of the frames after the damage right) and
reading goes on to the file's frame count; each lost span is kept in `lost_spans` and
logged once. Only when the file gives no frame count does a long run of failures end it.

With `detect_fps` the source hands over only the frames due at that rate (by media time,
the pacer of `core/pacing.py`): every frame is still decoded, since the next ones depend
on it, but only those handed over are converted to a picture, as the live reader does.
The pipeline's own pacer then takes every frame it is given, so the events are the same.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.pacing import FramePacer
from edge_agent.core.types import Frame
from edge_agent.sources import SourceError

logger = logging.getLogger(__name__)

MAX_CONSECUTIVE_BAD = 25  # without a frame count: at least this many failures, or 10 s of them, end it
DEFAULT_FPS = 25.0


class FileSource:
    def __init__(
        self, path: str | Path, camera_id: str, start_wall_ts: float = 0.0, detect_fps: float | None = None
    ) -> None:
        """`detect_fps`: hand over only the frames due at this rate (None: every frame)."""
        self.path = Path(str(path).removeprefix("file://"))
        self.camera_id = camera_id
        self.start_wall_ts = start_wall_ts
        self.detect_fps = detect_fps
        self.corrupt_frames = 0
        self.frames_read = 0  # frames decoded, handed over or not
        self.lost_spans: list[tuple[int, int]] = []  # (first, last) frame index of each lost span
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"{self.path}: cannot open the video (not a video, or a codec OpenCV lacks)")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0 or fps > 240:
            logger.warning(
                "%s: video reports no usable frame rate (%s); assuming %s fps", self.path, fps, DEFAULT_FPS
            )
            fps = DEFAULT_FPS
        self.fps = fps
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"{self.path}: the video holds no readable frame")
        self._first: npt.NDArray[np.uint8] = np.asarray(first, dtype=np.uint8)

    def __iter__(self) -> Iterator[Frame]:
        pacer = FramePacer(self.detect_fps) if self.detect_fps else None
        index = 0
        decoded = True
        # frame 0 was read whole when the file was opened; a pacer always takes the first frame
        picture: npt.NDArray[np.uint8] | None = self._first if pacer is None or pacer.due(0.0) else None
        bad = 0
        give_up = max(MAX_CONSECUTIVE_BAD, int(self.fps * 10))
        while True:
            if decoded:
                if bad:
                    self._lost(index - bad, index - 1, resumed=True)
                bad = 0
                self.frames_read += 1
                if picture is not None:
                    media_s = index / self.fps
                    yield Frame(self.camera_id, index, media_s, self.start_wall_ts + media_s, picture)
            index += 1
            decoded, picture = self._decode(index, pacer)
            if decoded:
                continue
            at_end = index >= self.frame_count - 1 if self.frame_count > 0 else bad >= give_up
            if at_end:
                if bad:
                    self._lost(index - bad, index - 1, resumed=False)
                break
            # A frame that fails to decode inside the file: skip it, count it, keep time right.
            bad += 1
            self.corrupt_frames += 1

    def _decode(self, index: int, pacer: FramePacer | None) -> tuple[bool, npt.NDArray[np.uint8] | None]:
        """Decode frame `index`: whether it decoded, and its picture where it is handed over."""
        if not self._cap.grab():
            return False, None
        if pacer is not None and not pacer.due(index / self.fps):
            return True, None  # decoded (the next frames need it), never converted
        ok, raw = self._cap.retrieve()
        if not ok or raw is None:
            return False, None
        return True, np.asarray(raw, dtype=np.uint8)

    def _lost(self, first: int, last: int, *, resumed: bool) -> None:
        self.lost_spans.append((first, last))
        logger.warning(
            "%s: frames %d-%d (%.1f-%.1f s) could not be decoded and were skipped%s",
            self.path,
            first,
            last,
            first / self.fps,
            (last + 1) / self.fps,
            f"; decoding resumed at frame {last + 1}" if resumed else "",
        )

    def close(self) -> None:
        self._cap.release()
