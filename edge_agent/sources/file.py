"""Recorded video: frames in order, time taken from the video (index / fps).

Because time comes from the file, never from the wall clock, two replays of
one clip see identical timestamps and give byte-identical events.

A damaged region (a bad sector, a recording cut by a power loss) makes reads fail for a
while; FFmpeg's demuxer moves on through the packets meanwhile, and decoding resumes at the
next keyframe after the damage. So failed reads are counted as lost frames (each failed read
is one frame of the file, which keeps the time of the frames after the damage right) and
reading goes on to the file's frame count; each lost span is kept in `lost_spans` and
logged once. Only when the file gives no frame count does a long run of failures end it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.types import Frame
from edge_agent.sources import SourceError

logger = logging.getLogger(__name__)

MAX_CONSECUTIVE_BAD = 25  # without a frame count: at least this many failures, or 10 s of them, end it
DEFAULT_FPS = 25.0


class FileSource:
    def __init__(self, path: str | Path, camera_id: str, start_wall_ts: float = 0.0) -> None:
        self.path = Path(str(path).removeprefix("file://"))
        self.camera_id = camera_id
        self.start_wall_ts = start_wall_ts
        self.corrupt_frames = 0
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
        index = 0
        image: npt.NDArray[np.uint8] | None = self._first
        bad = 0
        give_up = max(MAX_CONSECUTIVE_BAD, int(self.fps * 10))
        while True:
            if image is not None:
                if bad:
                    self._lost(index - bad, index - 1, resumed=True)
                bad = 0
                media_s = index / self.fps
                yield Frame(self.camera_id, index, media_s, self.start_wall_ts + media_s, image)
            index += 1
            ok, raw = self._cap.read()
            image = np.asarray(raw, dtype=np.uint8) if ok and raw is not None else None
            if image is not None:
                continue
            at_end = index >= self.frame_count - 1 if self.frame_count > 0 else bad >= give_up
            if at_end:
                if bad:
                    self._lost(index - bad, index - 1, resumed=False)
                break
            # A frame that fails to decode inside the file: skip it, count it, keep time right.
            bad += 1
            self.corrupt_frames += 1

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
