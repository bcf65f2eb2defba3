"""Detection workers: one shared queue of cameras, each camera stepped by one worker at a time."""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable

import pytest

from edge_agent.app.wiring import worker_count
from edge_agent.app.workers import WorkerPool, default_workers, physical_cores
from edge_agent.core.config import Config, ModelConfig


class Camera:
    """A camera stand-in: `frames` frames to analyse, each costing `cost_s` of CPU and `wait_s`
    outside the GIL; records
    the threads that stepped it and whether two steps ever overlapped."""

    def __init__(self, pool: WorkerPool, frames: int, cost_s: float = 0.0, wait_s: float = 0.0) -> None:
        self.pool = pool
        self.left = frames
        self.cost_s = cost_s
        self.wait_s = wait_s
        self.worker = -1
        self.steps = 0
        self.threads: set[str] = set()
        self.overlapped = False
        self._busy = threading.Lock()

    def arrive(self, n: int = 1) -> None:
        """`n` frames from the reader: the camera asks for a worker."""
        self.left += n
        self.pool.ready(self)

    def step(self) -> bool:
        if not self._busy.acquire(blocking=False):
            self.overlapped = True
            return False
        try:
            self.threads.add(threading.current_thread().name)
            if self.left <= 0:
                return False
            self.left -= 1
            self.steps += 1
            end = time.thread_time() + self.cost_s
            while time.thread_time() < end:
                pass
            time.sleep(self.wait_s)
            return True
        finally:
            self._busy.release()


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def test_every_worker_serves_every_camera_one_step_at_a_time() -> None:
    pool = WorkerPool(3)
    pool.start()
    cams = [Camera(pool, 0, cost_s=0.0005) for _ in range(4)]
    for _ in range(50):  # frames keep arriving while the workers step
        for cam in cams:
            cam.arrive()
        time.sleep(0.001)
    assert wait_for(lambda: all(cam.left == 0 for cam in cams)), [cam.left for cam in cams]
    pool.stop(5)
    assert [cam.steps for cam in cams] == [50] * 4
    assert not any(cam.overlapped for cam in cams), "a camera was stepped by two workers at once"
    assert set().union(*(cam.threads for cam in cams)) == {"detect-0", "detect-1", "detect-2"}
    assert all(cam.worker in (0, 1, 2) for cam in cams)
    assert pool.alive(time.monotonic(), 60)
    assert [w["failures"] for w in pool.stats()] == [0, 0, 0]


def test_a_frame_that_lands_during_a_step_is_not_forgotten() -> None:
    # The reader tells the pool while the camera is being stepped: the camera goes back in
    # the queue when the step ends, although that step found nothing more to do.
    pool = WorkerPool(1)
    pool.start()
    cam = Camera(pool, 0)
    landed = threading.Event()

    def step_and_land() -> bool:
        if not landed.is_set():
            landed.set()
            cam.left += 1
            pool.ready(cam)  # during the step, which will report it had no frame
            return False
        return Camera.step(cam)

    cam.step = step_and_land  # type: ignore[method-assign]
    pool.ready(cam)
    assert wait_for(lambda: cam.steps == 1), "the frame that landed during a step was never analysed"
    pool.stop(5)


def test_a_slow_camera_does_not_hold_back_the_others() -> None:
    # With cameras dealt to workers, a camera sharing a worker with a slow one waited behind
    # each of its steps; from the shared queue the other worker serves it meanwhile.
    pool = WorkerPool(2)
    pool.start()
    slow = Camera(pool, 0, wait_s=0.4)
    quick = [Camera(pool, 0) for _ in range(3)]
    slow.arrive(3)
    for cam in quick:
        cam.arrive(20)
    assert wait_for(lambda: all(cam.left == 0 for cam in quick), 5.0)
    assert slow.left > 0, "the quick cameras waited for the slow one's three steps"
    assert wait_for(lambda: slow.left == 0)
    pool.stop(5)


def test_cameras_short_of_workers_take_turns() -> None:
    # More frames than the worker can take: the cameras take turns in the order they became
    # ready, so none gets ahead of another by more than one step, whatever its place in the
    # config or how many frames it has waiting.
    pool = WorkerPool(1)
    cams = [Camera(pool, 0, wait_s=0.002) for _ in range(5)]
    for i, cam in enumerate(cams):
        cam.arrive(10_000 if i else 2)  # the first runs out of frames after two steps
    pool.start()
    assert wait_for(lambda: min(cam.steps for cam in cams[1:]) >= 20)
    pool.stop(5)
    steps = [cam.steps for cam in cams[1:]]
    assert max(steps) - min(steps) <= 1, steps
    assert cams[0].steps == 2


def test_a_failing_step_is_counted_and_the_worker_goes_on() -> None:
    class Broken:
        worker = -1
        calls = 0

        def step(self) -> bool:
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("a bug outside the camera's fault boundary")
            return False

    pool = WorkerPool(1)
    pool.start()
    broken = Broken()
    pool.ready(broken)
    assert wait_for(lambda: Broken.calls == 1)
    pool.ready(broken)  # its next frame
    assert wait_for(lambda: Broken.calls >= 2)
    pool.stop(5)
    assert pool.workers[0].failures == 1


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
    from edge_agent.app.memory import limit_malloc_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is (platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
