"""Detection workers: cameras dealt by load, each served by one thread, stopped on request."""

from __future__ import annotations

import platform
import threading
import time

import pytest

from edge_agent.app.wiring import worker_count
from edge_agent.app.workers import (
    DetectionWorker,
    WorkerPool,
    assign_by_load,
    default_workers,
    physical_cores,
)
from edge_agent.core.config import Config, ModelConfig


class Counter:
    """A camera stand-in: has a frame `frames` times, records the threads that stepped it."""

    def __init__(self, frames: int) -> None:
        self.left = frames
        self.threads: set[str] = set()

    def step(self) -> bool:
        self.threads.add(threading.current_thread().name)
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def test_cameras_are_dealt_by_their_detect_fps() -> None:
    # a 10 fps camera weighs as two 5 fps ones: it gets a worker of its own
    assert assign_by_load([5, 5, 10], 2) == [[2], [0, 1]]
    assert assign_by_load([5, 5, 5, 5, 5], 2) == [[0, 2, 4], [1, 3]]
    assert assign_by_load([5, 5], 4) == [[0], [1], [], []]
    assert assign_by_load([], 2) == [[], []]
    # the same config always gives the same assignment
    assert assign_by_load([2, 7, 7, 3, 1], 3) == assign_by_load([2, 7, 7, 3, 1], 3)


def test_a_worker_serves_only_its_cameras_on_its_own_thread_until_stopped() -> None:
    pool = WorkerPool(2)
    mine, theirs = Counter(50), Counter(50)
    pool.start()
    pool.workers[0].assign([mine])
    pool.workers[1].assign([theirs])
    deadline = time.monotonic() + 10
    while (mine.left or theirs.left) and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.stop(5)
    assert mine.left == 0 and theirs.left == 0
    assert mine.threads == {"detect-0"} and theirs.threads == {"detect-1"}
    assert pool.alive(time.monotonic(), 60)
    assert [w["failures"] for w in pool.stats()] == [0, 0]


def test_a_failing_turn_is_counted_and_the_worker_goes_on() -> None:
    class Broken:
        calls = 0

        def step(self) -> bool:
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("a bug outside the camera's fault boundary")
            return False

    worker = DetectionWorker(0)
    worker.start()
    worker.assign([Broken()])
    deadline = time.monotonic() + 10
    while Broken.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.stop(5)
    assert worker.failures == 1 and Broken.calls >= 2


def test_defaults_fit_the_box() -> None:
    assert physical_cores() >= 1
    cfg = ModelConfig()
    assert cfg.threads == 1 and cfg.workers is None


def test_two_workers_per_core_unless_the_config_says() -> None:
    # one worker steps its cameras one after the other: two per core let the scheduler use
    # a core the other worker's chain leaves free
    cameras = [{"id": "c", "url": "c.mp4"}]
    base = {"version": 1, "site": {"id": "s"}, "device": {"id": "d"}, "cameras": cameras}
    assert worker_count(Config.model_validate(base)) == default_workers() == 2 * physical_cores()
    pinned = Config.model_validate({**base, "model": {"name": "yolox-nano", "workers": 3}})
    assert worker_count(pinned) == 3


def test_malloc_arenas_are_capped_unless_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_agent.app.agent import limit_malloc_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is (platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


class Spinner:
    """A camera stand-in with a frame on every step, costing `cost_s` of CPU; movable."""

    def __init__(self, cost_s: float, worker: int, wake: threading.Event) -> None:
        self.cost_s = cost_s
        self.worker = worker
        self.wake = wake
        self.lock = threading.Lock()  # as CameraRuntime's: a moved camera's steps never overlap
        self.threads: set[str] = set()

    def step(self) -> bool:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            end = time.thread_time() + self.cost_s
            while time.thread_time() < end:
                pass
            time.sleep(0.001)  # let the other worker run on a one-core box
        return True


def test_cameras_are_dealt_again_by_what_they_cost() -> None:
    # dealt by detect.fps, the two busy cameras (0 and 2) land on worker 0, the quiet ones on 1
    pool = WorkerPool(2)
    costs = [0.004, 0.0002, 0.004, 0.0002]
    groups = assign_by_load([5.0] * 4, 2)
    assert groups == [[0, 2], [1, 3]]
    cams = [Spinner(cost, i % 2, pool.workers[i % 2].wake) for i, cost in enumerate(costs)]
    pool.start()
    for w, group in zip(pool.workers, groups, strict=True):
        w.assign([cams[i] for i in group])
    time.sleep(0.5)
    assert pool.rebalance(cams)
    busy = [cam.worker for cam in cams if cam.cost_s > 0.001]
    assert sorted(busy) == [0, 1]  # one busy camera per worker now
    assert all(cam.wake is pool.workers[cam.worker].wake for cam in cams)
    served = [*pool.workers[0].cameras, *pool.workers[1].cameras]
    assert sorted(map(id, served)) == sorted(map(id, cams))  # each camera on exactly one worker
    time.sleep(0.5)
    # balanced now: a second look moves nothing
    assert not pool.rebalance(cams)
    pool.stop(5)
    moved = [cam for cam in cams if len(cam.threads) == 2]
    assert moved, "a camera that moved was stepped by its new worker"


def test_no_cost_yet_moves_nothing() -> None:
    pool = WorkerPool(2)
    cams = [Spinner(0.0, i % 2, pool.workers[i % 2].wake) for i in range(4)]
    assert not pool.rebalance(cams)
    assert not pool.rebalance([])
