"""The one small grey picture per analysed frame that the motion gate and the background model share.

Both work on a blurred grey thumbnail `WORK_WIDTH` pixels wide; computing it once per
analysed frame (not once per consumer) halves the cost of a quiet camera.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

WORK_WIDTH = 160  # width of the thumbnail (aspect kept)


def work_grey(image: npt.NDArray[np.uint8], width: int = WORK_WIDTH) -> npt.NDArray[np.uint8]:
    """`image` (BGR or grey) shrunk to `width` pixels wide, grey, blurred 5x5 against noise."""
    h, w = image.shape[:2]
    if w > width:
        small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    else:
        small = image
    grey = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.GaussianBlur(grey, (5, 5), 0), dtype=np.uint8)
