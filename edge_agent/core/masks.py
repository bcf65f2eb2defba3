"""Privacy masks: polygons blacked out before detection and in every picture that leaves the box."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.geometry import to_pixels
from edge_agent.core.types import Frame

Image = npt.NDArray[np.uint8]


def _corners(masks: Iterable[np.ndarray]) -> list[npt.NDArray[np.int32]]:
    """Pixel polygons as the whole-pixel corners `cv2.fillPoly` takes."""
    return [np.round(m).astype(np.int32) for m in masks]


def black_out(image: Image, masks: Iterable[np.ndarray]) -> Image:
    """A copy of `image` with pixel polygons filled black (privacy masks)."""
    out = image.copy()
    cv2.fillPoly(out, _corners(masks), (0, 0, 0))
    return out


class PrivacyMasks:
    def __init__(self, masks: Sequence[Sequence[Sequence[float]]]) -> None:
        self.relative = [list(m) for m in masks]
        self._corners: list[npt.NDArray[np.int32]] = []
        self._size: tuple[int, int] | None = None

    def apply(self, frame: Frame) -> Frame:
        """The frame with every mask filled black; the same frame when there are none."""
        if not self.relative:
            return frame
        if self._size != (frame.width, frame.height):
            # made once per frame size: every analysed (and every clip) frame is masked
            self._corners = _corners(to_pixels(m, frame.width, frame.height) for m in self.relative)
            self._size = (frame.width, frame.height)
        image = frame.image.copy()
        cv2.fillPoly(image, self._corners, (0, 0, 0))
        return Frame(frame.camera_id, frame.index, frame.media_s, frame.wall_ts, image)
