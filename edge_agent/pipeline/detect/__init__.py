"""Detectors: anything with `labels` and `detect(image) -> Detections`."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.core.types import Detections


class Detector(Protocol):
    labels: tuple[str, ...]

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections: ...
