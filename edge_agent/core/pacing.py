"""Which frames the detector gets: `detect.fps` by media time.

The camera reader (`sources/rtsp.py`) and the pipeline (`pipeline/camera.py`) run the same
pacer on the same media times: the reader converts only the frames the pipeline's pacer
will take (decoding the others but skipping their colour conversion), and the pipeline's
pacer then takes every frame the reader hands over. Two pacers fed one increasing sequence,
the second seeing a subset of what the first passed, never disagree: the second's next due
time is never later than the first's.
"""

from __future__ import annotations


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
