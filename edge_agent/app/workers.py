"""Detection workers: N threads (two per physical core by default) sharing one queue of cameras.

A camera whose reader has a frame for the detector is put in the pool's ready queue
(`WorkerPool.ready`, called from the reader thread); whichever worker is free takes the
camera at the head, steps it (one frame: gate, detector, tracker, rules), and puts it
back at the tail if it may have another. So every worker serves every camera, the
frames are analysed in the order their cameras became ready, and a box short of CPU
slows all its cameras alike instead of the ones that happened to share a worker.

A camera is in the queue at most once and stepped by one worker at a time (the pool
marks it running; a frame that lands meanwhile puts it back when the step ends), and
each step holds the camera's own lock, so its tracker and rule state are only ever
touched by one thread at once. The workers run side by side because onnxruntime, OpenCV
and NumPy release the GIL in their heavy parts. All of them call one shared detector:
onnxruntime's `run` is thread-safe, and at 1 intra-op thread a call runs on its
caller's thread, so one session used from two threads gave the same inferences per
second as a session each (bench/REPORT.md, "Detector threads") for one copy of the
weights.

Each camera's reader queues at most two frames (sources/rtsp.py): a camera that waits
longer than that in the ready queue finds its older frame pushed out, and the reader
counts the dropped frame.

Why one shared queue, not cameras dealt to workers: with each worker stepping a fixed
share of the cameras, a worker that had three busy cameras fell behind while one with
two had time to spare, and under load the slowest camera fell well below the mean
(bench/REPORT.md, "Live cameras").
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 0.5  # a worker with nothing to do turns its loop at least this often
FAILURE_PAUSE_S = 1.0
# Workers per physical core. A worker's step holds the GIL in its Python parts (tracker,
# rules, gate) and releases it in the model, so with one worker per core a core sat idle
# while both workers were in Python; two per core keep the model running meanwhile.
WORKERS_PER_CORE = 2


class Steppable(Protocol):
    """A camera as the workers see it: `step` analyses its next frame (False: it had none)."""

    worker: int  # the worker that analysed its last frame (-1: none yet); set by the worker

    def step(self) -> bool: ...


def physical_cores() -> int:
    """Physical cores this process may run on (hyperthread siblings count once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cpus:
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            core = (topo / "core_id").read_text().strip()
            package = (topo / "physical_package_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return max(1, len(cores))


def default_workers() -> int:
    """Detection workers when `model.workers` is not set: `WORKERS_PER_CORE` per physical core."""
    return WORKERS_PER_CORE * physical_cores()


class DetectionWorker:
    """One thread that takes ready cameras from its pool and steps them until stopped."""

    def __init__(self, index: int, pool: WorkerPool) -> None:
        self.index = index
        self._pool = pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"detect-{index}", daemon=True)
        self.beat = time.monotonic()  # last loop turn: the main loop checks it before kicking systemd
        self.busy_s = 0.0  # time spent stepping cameras that had a frame
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        self._stop.set()
        self._pool.wake_all()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat = time.monotonic()
            cam = self._pool.take(IDLE_WAIT_S)
            if cam is None:
                continue
            worked = False
            t0 = time.perf_counter()
            try:
                worked = cam.step()
            except Exception:  # a bug outside a camera's own fault boundary: keep serving
                self.failures += 1
                logger.exception("detection worker %d: a step failed", self.index)
                self._stop.wait(FAILURE_PAUSE_S)
            finally:
                self._pool.done(cam, worked)
            if worked:
                self.busy_s += time.perf_counter() - t0
                cam.worker = self.index


class WorkerPool:
    """The agent's detection workers and the queue of cameras ready for them."""

    def __init__(self, count: int) -> None:
        self._cond = threading.Condition()
        self._ready: collections.deque[Steppable] = collections.deque()
        self._queued: set[Steppable] = set()  # in `_ready`
        self._running: set[Steppable] = set()  # being stepped by a worker
        self._again: set[Steppable] = set()  # running, and a frame came meanwhile
        self.workers = [DetectionWorker(i, self) for i in range(max(1, count))]
        self.started = time.monotonic()

    def __len__(self) -> int:
        return len(self.workers)

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def stop(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for w in self.workers:
            w._stop.set()
        self.wake_all()
        for w in self.workers:
            if not w.stop(max(0.0, deadline - time.monotonic())):
                logger.warning("detection worker %d did not stop in time", w.index)

    def ready(self, cam: Steppable) -> None:
        """`cam` has a frame for the detector (called by its reader thread): queue it once."""
        with self._cond:
            if cam in self._running:
                self._again.add(cam)
            elif cam not in self._queued:
                self._queued.add(cam)
                self._ready.append(cam)
                self._cond.notify()

    def take(self, timeout_s: float) -> Steppable | None:
        """The camera at the head of the queue, marked running; None after `timeout_s` idle."""
        with self._cond:
            if not self._ready and not self._cond.wait_for(lambda: bool(self._ready), timeout_s):
                return None
            cam = self._ready.popleft()
            self._queued.discard(cam)
            self._running.add(cam)
            return cam

    def done(self, cam: Steppable, worked: bool) -> None:
        """A step of `cam` ended: back at the tail if it analysed a frame (another may wait)
        or a frame came while it ran."""
        with self._cond:
            self._running.discard(cam)
            again = cam in self._again
            self._again.discard(cam)
            if (worked or again) and cam not in self._queued:
                self._queued.add(cam)
                self._ready.append(cam)
                self._cond.notify()

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def alive(self, now: float, max_age_s: float) -> bool:
        """Every worker turned its loop within `max_age_s` (a worker stuck in a call did not)."""
        return all(now - w.beat <= max_age_s for w in self.workers)

    def stats(self) -> list[dict[str, Any]]:
        """Per worker: its share of wall time spent on frames, and steps that failed (the agent
        adds the cameras whose last frame it analysed)."""
        span = max(1e-9, time.monotonic() - self.started)
        return [
            {"cameras": [], "busy_pct": round(100.0 * w.busy_s / span, 1), "failures": w.failures}
            for w in self.workers
        ]
