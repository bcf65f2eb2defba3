"""What the detector gets: frames paced to `detect.fps`, and only those where something moved."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.pipeline.thumbnail import work_grey


class FramePacer:
    """Picks frames at `fps` by media time; the rest are dropped (and counted).

    Pacing by time, not by every n-th frame, keeps the detection rate right on
    sources whose frame rate differs from the config or drifts.
    """

    def __init__(self, fps: float) -> None:
        self.period_s = 1.0 / fps
        self._next_s: float | None = None
        self.skipped = 0

    def due(self, media_s: float) -> bool:
        eps = 1e-6
        if self._next_s is None or media_s + eps >= self._next_s:
            nxt = (self._next_s if self._next_s is not None else media_s) + self.period_s
            # after a long gap, start again from now rather than catching up
            self._next_s = nxt if nxt > media_s else media_s + self.period_s
            return True
        self.skipped += 1
        return False


class MotionGate:
    """Skips the detector on frames where nothing moved since it last ran.

    The reference is the last frame the detector saw, not the previous frame,
    so slow changes (a bag set down over many frames) add up and trigger it.
    A detector run is forced every `max_gap_s` anyway to refresh scores.
    On a skipped frame the pipeline reuses the last detections, so tracks of
    still objects (a parked car, a dumped bag) live on and rule clocks advance.
    """

    def __init__(
        self,
        width: int = 160,
        pixel_delta: int = 20,
        min_changed: float = 0.002,
        max_gap_s: float = 2.0,
    ) -> None:
        self.width = width
        self.pixel_delta = pixel_delta
        self.min_changed = min_changed
        self.max_gap_s = max_gap_s
        self._ref: np.ndarray | None = None
        self._ref_s = float("-inf")
        self.skipped = 0

    def needs_detection(self, image: np.ndarray, media_s: float, small: np.ndarray | None = None) -> bool:
        """Whether to run the detector; `small` is the frame's shared thumbnail (`work_grey`), if made."""
        if small is None or small.shape[1] != min(self.width, image.shape[1]):
            small = work_grey(image, self.width)
        ref = self._ref
        run = (
            ref is None
            or ref.shape != small.shape
            or media_s - self._ref_s >= self.max_gap_s
            or float(np.mean(cv2.absdiff(small, ref) > self.pixel_delta)) >= self.min_changed
        )
        if run:
            self._ref, self._ref_s = small, media_s
        else:
            self.skipped += 1
        return run
