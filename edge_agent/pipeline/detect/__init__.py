"""Detectors: anything with `labels` and `detect(image) -> Detections`.

A detector may also split `detect` in two (`StagedDetector`): `prepare` makes the model's
input from a frame (letterbox, tensor) and `detect_prepared` runs the model on it, so
replay can make the next frame's input on one thread while the model runs on another.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edge_agent.core.types import Detections


class Detector(Protocol):
    labels: tuple[str, ...]

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections: ...


@runtime_checkable
class StagedDetector(Protocol):
    """`detect(image)` is `detect_prepared(prepare(image))`; the input is the detector's own."""

    labels: tuple[str, ...]

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections: ...

    def prepare(self, image: npt.NDArray[np.uint8]) -> object: ...

    def detect_prepared(self, prepared: object) -> Detections: ...
