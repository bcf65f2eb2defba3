"""What the detector gets: frames paced to `detect.fps`, privacy masks burned in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_agent.evidence import black_out
from edge_agent.geometry import to_pixels
from edge_agent.types import Frame


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


class PrivacyMasks:
    def __init__(self, masks: Sequence[Sequence[Sequence[float]]]) -> None:
        self.relative = [list(m) for m in masks]
        self._pixels: list[np.ndarray] = []
        self._size: tuple[int, int] | None = None

    def apply(self, frame: Frame) -> Frame:
        """The frame with every mask filled black; the same frame when there are none."""
        if not self.relative:
            return frame
        if self._size != (frame.width, frame.height):
            self._pixels = [to_pixels(m, frame.width, frame.height) for m in self.relative]
            self._size = (frame.width, frame.height)
        return Frame(
            frame.camera_id, frame.index, frame.media_s, frame.wall_ts, black_out(frame.image, self._pixels)
        )
