"""Detection workers: N threads (two per physical core by default), each serving its own cameras in turn.

A camera belongs to one worker at a time and its steps hold its own lock, so its
tracker and rule state are only ever touched by one thread at once; the workers
run side by side because onnxruntime, OpenCV and NumPy release the GIL in their
heavy parts. All workers call one
shared detector: onnxruntime's `run` is thread-safe, and at 1 intra-op thread a
call runs on its caller's thread, so one session used from two threads gave the
same inferences per second as a session each (bench/REPORT.md, "Detector
threads") for one copy of the weights.

Cameras are dealt to workers by load (the sum of their `detect.fps`), the
busiest camera first, each to the least-loaded worker: a 10 fps camera counts
as two 5 fps ones. A camera's reader queues at most two frames (sources/rtsp.py):
a worker that falls further behind finds the older one pushed out, and the reader
counts the dropped frame.

What a camera costs is known only once it runs: a quiet street skips the
detector on most frames (the motion gate) and costs a tenth of a busy one, so
cameras dealt by `detect.fps` alone can put every busy camera on one worker
while the others idle. Each worker counts the CPU time (`time.thread_time`) each
of its cameras took, and `WorkerPool.rebalance` (called by the agent's main
loop) deals them again by that cost when it lowers the busiest worker's load
by a fifth or more. A moved camera is still stepped by one thread at a time: its
own lock is held by every step.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 0.5  # a worker with nothing to do looks again at least this often
FAILURE_PAUSE_S = 1.0
REBALANCE_GAIN = 0.2  # cameras move only when that lowers the busiest worker's CPU by a fifth
# A worker steps its cameras one after the other, so it can never analyse more than one
# core's worth of frames, and it gets less: the readers, the MQTT thread and everything
# else on the box run on the same cores. With one worker per core, ten cameras on two
# cores had their workers on a CPU 67 % of the time and waiting in the run queue 22 %,
# 85 % busy, and dropping frames at 1.4 of the 2 cores. Two per core let the scheduler put
# the workers' work on whichever core is free (bench/REPORT.md, "Live cameras").
WORKERS_PER_CORE = 2


class Steppable(Protocol):
    def step(self) -> bool: ...


class Movable(Steppable, Protocol):
    """A camera the pool may move: its reader sets `wake`, the serving worker's event."""

    worker: int
    wake: threading.Event


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


def assign_by_load(loads: Sequence[float], workers: int) -> list[list[int]]:
    """Indices of `loads` dealt to `workers` lists: heaviest first, each to the least-loaded list.

    Deterministic (ties go to the lower worker; each list keeps the config's order), so
    the same config always puts the same camera on the same worker.
    """
    buckets: list[list[int]] = [[] for _ in range(max(1, workers))]
    totals = [0.0] * len(buckets)
    for i in sorted(range(len(loads)), key=lambda i: (-loads[i], i)):
        w = min(range(len(buckets)), key=lambda b: (totals[b], b))
        buckets[w].append(i)
        totals[w] += loads[i]
    return [sorted(bucket) for bucket in buckets]


class DetectionWorker:
    """One thread that steps its cameras until stopped; `wake` is set by their readers."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.wake = threading.Event()
        self._cameras: Sequence[Steppable] = ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"detect-{index}", daemon=True)
        self.beat = time.monotonic()  # last loop turn: the main loop checks it before kicking systemd
        self.busy_s = 0.0  # time spent stepping cameras that had a frame
        self.failures = 0
        # CPU seconds each camera's steps took since the pool last looked (`take_costs`)
        self._costs: dict[Steppable, float] = {}

    def assign(self, cameras: Sequence[Steppable]) -> None:
        """Serve `cameras` from the next turn on (a new tuple: the running turn keeps its own)."""
        self._cameras = tuple(cameras)
        self.wake.set()

    @property
    def cameras(self) -> Sequence[Steppable]:
        return self._cameras

    def take_costs(self) -> dict[Steppable, float]:
        """CPU seconds per camera since the last call (a step that ends meanwhile may count in the next)."""
        costs, self._costs = self._costs, {}
        return costs

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat = time.monotonic()
            # Clear before looking: a frame that lands while the cameras are served sets
            # the flag again, so the wait below never sleeps past it.
            self.wake.clear()
            worked = False
            t0 = time.perf_counter()
            try:
                for cam in self._cameras:
                    c0 = time.thread_time()
                    if cam.step():
                        worked = True
                        self._costs[cam] = self._costs.get(cam, 0.0) + time.thread_time() - c0
            except Exception:  # a bug outside a camera's own fault boundary: keep serving
                self.failures += 1
                logger.exception("detection worker %d: a turn failed", self.index)
                self._stop.wait(FAILURE_PAUSE_S)
                continue
            if worked:
                self.busy_s += time.perf_counter() - t0
            else:
                self.wake.wait(IDLE_WAIT_S)


class WorkerPool:
    """The agent's detection workers; started once, cameras re-dealt on each (re)load."""

    def __init__(self, count: int) -> None:
        self.workers = [DetectionWorker(i) for i in range(max(1, count))]
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
            w.wake.set()
        for w in self.workers:
            if not w.stop(max(0.0, deadline - time.monotonic())):
                logger.warning("detection worker %d did not stop in time", w.index)

    def rebalance(self, cameras: Sequence[Movable], min_gain: float = REBALANCE_GAIN) -> bool:
        """Deal `cameras` again by the CPU time each took since the last call, if that lowers
        the busiest worker's share by `min_gain` or more; True when cameras moved."""
        taken: dict[Steppable, float] = {}
        for w in self.workers:
            for cam, cost in w.take_costs().items():
                taken[cam] = taken.get(cam, 0.0) + cost
        costs = [taken.get(cam, 0.0) for cam in cameras]
        now = [0.0] * len(self.workers)
        for cam, cost in zip(cameras, costs, strict=True):
            now[cam.worker] += cost
        groups = assign_by_load(costs, len(self.workers))
        best = max(sum(costs[i] for i in group) for group in groups) if cameras else 0.0
        if not cameras or max(now) <= 0.0 or best > (1.0 - min_gain) * max(now):
            return False
        for worker, group in zip(self.workers, groups, strict=True):
            for i in group:
                cameras[i].worker, cameras[i].wake = worker.index, worker.wake
            worker.assign([cameras[i] for i in group])
        logger.info(
            "detection workers re-dealt by CPU per camera: busiest worker %.0f%% -> %.0f%% of the total",
            100.0 * max(now) / max(sum(costs), 1e-9),
            100.0 * best / max(sum(costs), 1e-9),
        )
        return True

    def alive(self, now: float, max_age_s: float) -> bool:
        """Every worker turned its loop within `max_age_s` (a worker stuck in a call did not)."""
        return all(now - w.beat <= max_age_s for w in self.workers)

    def stats(self) -> list[dict[str, Any]]:
        """Per worker: its share of wall time spent on frames, and turns that failed."""
        span = max(1e-9, time.monotonic() - self.started)
        return [
            {"cameras": [], "busy_pct": round(100.0 * w.busy_s / span, 1), "failures": w.failures}
            for w in self.workers
        ]
