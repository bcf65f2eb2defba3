"""The small grey pictures the motion gate and the background model of `left_object` work on.

Both compare blurred grey thumbnails `WORK_WIDTH` pixels wide. `work_grey` shrinks by area
averaging (what the background model's thresholds are tuned on); on a camera with a
`left_object` rule it is made once per analysed frame and shared by the gate and the rules.
A camera without one has the gate alone, which takes `gate_grey`: the same size, shrunk
by bilinear sampling, at a sixth of the cost (0.17 vs 1.0 ms for a 640x480 frame here),
since on a quiet camera the thumbnail is most of what an analysed frame costs.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

WORK_WIDTH = 160  # width of the thumbnail (aspect kept)


def work_grey(image: npt.NDArray[np.uint8], width: int = WORK_WIDTH) -> npt.NDArray[np.uint8]:
    """`image` (BGR or grey) shrunk to `width` pixels wide by area averaging, grey, blurred 5x5."""
    return _shrunk_grey(image, width, cv2.INTER_AREA)


def gate_grey(image: npt.NDArray[np.uint8], width: int = WORK_WIDTH) -> npt.NDArray[np.uint8]:
    """`image` shrunk to `width` pixels wide by bilinear sampling, grey, blurred 5x5: the gate's own."""
    return _shrunk_grey(image, width, cv2.INTER_LINEAR)


def _shrunk_grey(image: npt.NDArray[np.uint8], width: int, interpolation: int) -> npt.NDArray[np.uint8]:
    h, w = image.shape[:2]
    if w > width:
        small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=interpolation)
    else:
        small = image
    grey = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.GaussianBlur(grey, (5, 5), 0), dtype=np.uint8)
