"""OpenCV's own thread pool, off while the agent or a replay runs.

Both already run their work on threads of their own: the live agent a reader per
camera and its detection workers, replay one thread per stage. OpenCV would split each
resize and blur of those threads over a pool of its own as well: on a 2-core box that
adds CPU without adding speed. Its worker spins (`sched_yield`) after every split while
another thread needs the core, and a call that finds the pool busy waits for it. With
the pool off (`cv2.setNumThreads(1)`), every call runs whole on the thread that made it:

- replay of walkway-a took 2.5 % less CPU (4.64 vs 4.76 s, 8 interleaved runs on 2
  cores) at the same speed;
- one busy camera's frame cost 0.5 ms less CPU (the letterbox 0.55 vs 0.96 ms, the
  motion gate's thumbnail 0.30 vs 0.40 ms; 768x576 frames, 2 cores); the live agent's
  numbers are in bench/REPORT.md.

OpenCV's results do not depend on its thread count, so the events are the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cv2


@contextlib.contextmanager
def opencv_without_pool() -> Iterator[None]:
    """`cv2.setNumThreads(1)` inside the block, the caller's setting back after it."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)
