"""A dual background model: new static things that no detector class names.

Two running averages of a downscaled, blurred grey frame are kept, both with
time constants in seconds of media time (never frames, never the wall clock):

- the *fast* background follows the scene within a couple of seconds, so an
  object that was put down becomes part of it almost at once;
- the *slow* background is what the place looked like before. It is updated
  only where nothing static and new stands (selective update), so a dumped bag
  stays "new" for as long as it lies there, and it is reset only deliberately:
  on a global change of the picture.

A pixel that differs from the slow background but matches the fast one (and
the current frame) is *new static foreground*. Connected regions of it are
returned in frame pixels; the `left_object` rule decides which of them are
incidents (inside the zone, explained by no person or vehicle track, old
enough).

A global change (more than `GLOBAL_CHANGE` of the frame differs at once:
street lights switching on, a cloud, the camera's exposure or IR switch)
resets both backgrounds to the current frame instead of reporting the whole
picture as one huge object.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

WORK_WIDTH = 160  # the model runs on frames this wide (aspect kept)
FAST_TAU_S = 1.0  # time constant of the fast background
SLOW_TAU_S = 120.0  # time constant of the slow background where nothing new stands
DIFF_LEVEL = 28.0  # grey levels (0..255) that count as "different"
GLOBAL_CHANGE = 0.4  # share of the frame that changing at once means a global change
MAX_REGION = 0.25  # regions larger than this share of the frame are not objects


@dataclass(frozen=True)
class Region:
    """One connected region of new static foreground, in frame pixels."""

    xyxy: tuple[float, float, float, float]
    area: float  # share of the frame area


class DualBackground:
    def __init__(
        self,
        fast_tau_s: float = FAST_TAU_S,
        slow_tau_s: float = SLOW_TAU_S,
        diff_level: float = DIFF_LEVEL,
        global_change: float = GLOBAL_CHANGE,
    ) -> None:
        self.fast_tau_s = fast_tau_s
        self.slow_tau_s = slow_tau_s
        self.diff_level = diff_level
        self.global_change = global_change
        self._fast: npt.NDArray[np.float32] | None = None
        self._slow: npt.NDArray[np.float32] | None = None
        self._last_s = 0.0
        self._scale = 1.0
        self.resets = 0
        self.static_mask: npt.NDArray[np.uint8] = np.zeros((0, 0), np.uint8)

    def _prepare(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        h, w = grey.shape[:2]
        self._scale = WORK_WIDTH / float(w) if w > WORK_WIDTH else 1.0
        if self._scale != 1.0:
            size = (WORK_WIDTH, max(1, round(h * self._scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.GaussianBlur(grey.astype(np.float32), (5, 5), 0), dtype=np.float32)

    def reset(self, grey: npt.NDArray[np.float32], media_s: float) -> None:
        self._fast = grey.copy()
        self._slow = grey.copy()
        self._last_s = media_s
        self.static_mask = np.zeros(grey.shape, np.uint8)

    def update(self, image: npt.NDArray[np.uint8], media_s: float) -> list[Region]:
        """Feed one frame; returns the regions of new static foreground."""
        grey = self._prepare(image)
        if self._fast is None or self._slow is None or self._fast.shape != grey.shape:
            self.reset(grey, media_s)
            return []
        dt = max(0.0, media_s - self._last_s)
        self._last_s = media_s
        moving = np.abs(grey - self._fast) > self.diff_level
        if float(moving.mean()) > self.global_change:
            self.resets += 1
            log.info("background: global change at %.1f s, resetting", media_s)
            self.reset(grey, media_s)
            return []
        a_fast = 1.0 - math.exp(-dt / self.fast_tau_s)
        a_slow = 1.0 - math.exp(-dt / self.slow_tau_s)
        self._fast += a_fast * (grey - self._fast)
        new = np.abs(self._fast - self._slow) > self.diff_level
        if float(new.mean()) > self.global_change:
            # a slower global change (a fade of the light over a few seconds)
            self.resets += 1
            log.info("background: global drift at %.1f s, resetting", media_s)
            self.reset(grey, media_s)
            return []
        static = new & ~moving
        # selective update: where something new stands, the slow model keeps the old look
        self._slow += np.where(new, 0.0, a_slow).astype(np.float32) * (grey - self._slow)
        mask = static.astype(np.uint8) * 255
        mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)), np.uint8)
        mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)), np.uint8)
        self.static_mask = mask
        return self._regions(mask)

    def _regions(self, mask: npt.NDArray[np.uint8]) -> list[Region]:
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        total = float(mask.shape[0] * mask.shape[1])
        inv = 1.0 / self._scale
        out: list[Region] = []
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            share = area / total
            if share > MAX_REGION:
                continue
            out.append(Region((x * inv, y * inv, (x + w) * inv, (y + h) * inv), share))
        return out
