"""Recorded video: frames in order, time taken from the video (index / fps).

Because time comes from the file, never from the wall clock, two replays of
one clip see identical timestamps and give byte-identical events.
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

MAX_CONSECUTIVE_BAD = 25
DEFAULT_FPS = 25.0


class FileSource:
    def __init__(self, path: str | Path, camera_id: str, start_wall_ts: float = 0.0) -> None:
        self.path = Path(str(path).removeprefix("file://"))
        self.camera_id = camera_id
        self.start_wall_ts = start_wall_ts
        self.corrupt_frames = 0
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
        while True:
            if image is not None:
                bad = 0
                media_s = index / self.fps
                yield Frame(self.camera_id, index, media_s, self.start_wall_ts + media_s, image)
            index += 1
            ok, raw = self._cap.read()
            image = np.asarray(raw, dtype=np.uint8) if ok and raw is not None else None
            if image is not None:
                continue
            if index >= self.frame_count - 1 or bad >= MAX_CONSECUTIVE_BAD:
                break
            # A frame that fails to decode inside the file: skip it, count it, keep time right.
            bad += 1
            self.corrupt_frames += 1
            logger.warning("%s: frame %d could not be decoded; skipped", self.path, index)
            image = None

    def close(self) -> None:
        self._cap.release()
