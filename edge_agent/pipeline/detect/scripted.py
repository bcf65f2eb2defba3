"""A detector that replays scripted detections, for rule scenarios without a model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from edge_agent.core.types import Detections


class ScriptedDetector:
    """Returns `script(call_index)` for the n-th call of `detect` (0-based)."""

    def __init__(self, labels: tuple[str, ...], script: Callable[[int], Detections]) -> None:
        self.labels = labels
        self.script = script
        self.calls = 0

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        dets = self.script(self.calls)
        self.calls += 1
        return dets


def boxes(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    """Detections from (x1, y1, x2, y2, score, class_id) rows."""
    if not rows:
        return Detections.empty()
    arr = np.asarray(rows, dtype=np.float64)
    return Detections(arr[:, :4], arr[:, 4], arr[:, 5].astype(np.int32))
