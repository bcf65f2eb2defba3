"""What the detector gets: frames paced to `detect.fps`, and only those where something moved."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.core.pacing import FramePacer
from edge_agent.pipeline.thumbnail import gate_grey

__all__ = ["FramePacer", "MotionGate"]


class MotionGate:
    """Skips the detector on frames where nothing moved since it last ran.

    The reference is the last frame the detector saw, not the previous frame,
    so slow changes (a bag set down over many frames) add up and trigger it.
    A detector run is forced every `max_gap_s` anyway (`detect.motion_refresh_s`, 5 s by
    default) to refresh scores and catch what the thumbnail cannot see change.
    On a skipped frame the pipeline reuses the last detections, so tracks of
    still objects (a parked car, a dumped bag) live on and rule clocks advance.
    """

    def __init__(
        self,
        width: int = 160,
        pixel_delta: int = 20,
        min_changed: float = 0.002,
        max_gap_s: float = 5.0,
    ) -> None:
        self.width = width
        self.pixel_delta = pixel_delta
        self.min_changed = min_changed
        self.max_gap_s = max_gap_s
        self._ref: np.ndarray | None = None
        self._ref_s = float("-inf")
        self.skipped = 0

    def needs_detection(self, image: np.ndarray, media_s: float, small: np.ndarray | None = None) -> bool:
        """Whether to run the detector; `small`: the frame's shared thumbnail (`work_grey`), if made.

        Give every frame of a camera the same kind of thumbnail (always shared, or never):
        the gate compares each with the one of the frame the detector last saw.
        """
        if small is None or small.shape[1] != min(self.width, image.shape[1]):
            small = gate_grey(image, self.width)
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
