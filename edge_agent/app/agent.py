"""`edge-agent run`: every camera, live, until SIGTERM.

Threads, not processes: each camera has a reader thread that keeps only its
two newest frames due for detection (`RtspSource`) and puts the camera in the
detection workers' shared queue when it has one (`app/workers.py`: two workers per
physical core by default, `model.workers`; whichever is free takes the camera that
has waited longest); the main thread here checks health, restarts cameras, reloads
and kicks the systemd watchdog; paho runs the MQTT thread. A late alert is worth
less than a fresh one, so frames the workers cannot keep up with are dropped and
counted, never queued past one period. A camera is stepped by one worker at a time
and every step holds its `lock`, so its pipeline state never meets two threads at
once; the lock also keeps the main thread's restart and close from landing in the
middle of a step.

Each camera is a fault boundary (`CameraRuntime`, app/camera_runtime.py): its
pipeline failing restarts that camera alone, with backoff, while the others go on.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent.app.camera_runtime import CameraRuntime
from edge_agent.app.checks import check_file
from edge_agent.app.command_actions import command_listener
from edge_agent.app.config import load_config
from edge_agent.app.memory import MallocTrim, limit_malloc_arenas
from edge_agent.app.opencv_threads import opencv_without_pool
from edge_agent.app.systemd import Watchdog, sd_notify
from edge_agent.app.wiring import (
    delivery_of,
    detector_of,
    homeassistant_of,
    worker_count,
)
from edge_agent.app.workers import WorkerPool
from edge_agent.core.config import Config, ConfigError, redact
from edge_agent.pipeline.detect import Detector
from edge_agent.pipeline.detect.models import ModelError
from edge_agent.pipeline.evidence import EvidenceStore

logger = logging.getLogger(__name__)

HEALTH_EVERY_S = 0.5
STOP_DRAIN_S = 5.0
SOURCE_STOP_S = 2.0
WORKER_STUCK_S = 60.0  # a worker whose loop has not turned for this long stops the watchdog kicks


class Agent:
    """Owns the running cameras, the shared detector and the delivery; reloads on SIGHUP."""

    def __init__(
        self,
        cfg: Config,
        config_path: str | None = None,
        fetch_model: Callable[[str], Path] | None = None,
        interrupted: Mapping[str, str] | None = None,
    ) -> None:
        """`fetch_model(name)` gets a model by its manifest for a remote model-update (tools layer);
        `interrupted` is a config-set the previous run did not finish (`recover_interrupted`)."""
        limit_malloc_arenas()  # before any thread of ours starts
        self.cfg = cfg
        self.config_path = config_path
        self.detector: Detector = detector_of(cfg)  # one session, called from every worker
        self.pool = WorkerPool(worker_count(cfg))
        self.delivery = delivery_of(cfg)
        ev = cfg.evidence
        self.evidence = EvidenceStore(ev.dir, ev.max_mb, ev.reserve_mb, ev.keep_mb)
        self.cameras: list[CameraRuntime] = []
        self.wake = threading.Event()  # the main loop's: stop and reload requests
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._reload_lock = threading.Lock()
        self._reload_waiters: list[Future[list[str]]] = []
        self.watchdog = Watchdog()
        self.malloc_trim = MallocTrim()  # the heaps' free pages back to the system (app/memory.py)
        self.commands = command_listener(self, fetch_model, interrupted)  # None: remote operations off

    # --- lifecycle -------------------------------------------------------------------

    def _build_cameras(self, cfg: Config) -> list[CameraRuntime]:
        """The cameras of `cfg` (not yet started); their readers queue them for the workers."""
        return [
            CameraRuntime(self, cam, self.delivery.sink, self.delivery.board, self.pool.ready)
            for cam in cfg.cameras
        ]

    def _serve(self, cameras: list[CameraRuntime]) -> None:
        for rt in cameras:
            rt.start()

    def start(self) -> None:
        self.cameras = self._build_cameras(self.cfg)
        self.delivery.board.put_stats(self.stats())  # the first stats message, sent on connect, has them
        self.delivery.start()
        self.pool.start()
        self._serve(self.cameras)
        if self.commands is not None:
            self.commands.start()
        logger.info(
            "%d detection worker(s), %d onnxruntime thread(s) each", len(self.pool), self.cfg.model.threads
        )

    def request_stop(self) -> None:
        self._stop.set()
        self.wake.set()

    def request_reload(self) -> None:
        """SIGHUP's request (safe in a signal handler: no lock)."""
        self._reload.set()
        self.wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def reload_and_wait(self, timeout_s: float) -> list[str]:
        """A reload by the main loop as SIGHUP does it, asked from another thread; its problems."""
        if self.stopping:
            return ["the agent is stopping"]
        done: Future[list[str]] = Future()
        with self._reload_lock:
            self._reload_waiters.append(done)
        self.request_reload()
        try:
            return done.result(timeout_s)
        except FutureTimeout:
            return [f"the reload did not finish within {timeout_s:g} s"]

    def install_signal_handlers(self) -> None:
        def on_term(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %d: stopping", signum)
            self.request_stop()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)

    def run(self) -> int:
        # Readers and workers are threads of ours: OpenCV's own pool only adds CPU (opencv_threads.py).
        with opencv_without_pool():
            self.start()
            sd_notify("READY=1")
            logger.info("running %d camera(s)", len(self.cameras))
            try:
                self._loop()
            finally:
                sd_notify("STOPPING=1")
                self.shutdown()
        return 0

    def _loop(self) -> None:
        """Health, restarts, reloads, stats and the watchdog; the workers do the frames."""
        while not self._stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                with self._reload_lock:
                    waiters, self._reload_waiters = self._reload_waiters, []
                problems = self.reload()
                for done in waiters:
                    done.set_result(problems)
            now = time.monotonic()
            for rt in self.cameras:
                rt.restart_if_due(now)
                rt.check_health(now)
            # A worker stuck inside a call (a hung accelerator driver) stops the kicks, so
            # systemd restarts the service instead of it running blind.
            self.delivery.outbox_sink.retry()  # events held in memory while the disk refused them
            # On the board for the publisher's next stats message (it never calls back in here):
            # at most one tick old when it is sent.
            self.delivery.board.put_stats(self.stats())
            if self.pool.alive(now, WORKER_STUCK_S):
                self.watchdog.kick()
            self.malloc_trim.tick(now)
            self.wake.wait(HEALTH_EVERY_S)
            self.wake.clear()

    def _stop_cameras(self, cameras: list[CameraRuntime]) -> None:
        # Ask every reader first, then wait on one shared deadline: ten hung cameras
        # must not add up to ten read timeouts when systemd waits for the stop.
        for rt in cameras:
            rt.source.stop(0.0)
            if rt.recording is not None:
                rt.recording.stop(0.0)
        deadline = time.monotonic() + SOURCE_STOP_S
        for rt in cameras:
            rt.source.stop(max(0.0, deadline - time.monotonic()))
            if rt.recording is not None:
                rt.recording.stop(max(0.0, deadline - time.monotonic()))
        for rt in cameras:
            with rt.lock:  # waits for a step in progress; no step runs after
                rt.closed = True
                try:
                    rt.pipeline.close()
                except Exception:  # a camera that broke must not keep the others' incidents open
                    logger.exception("camera %s: closing its pipeline failed", rt.cam.id)

    def shutdown(self) -> None:
        """Stop readers, end open incidents, flush the outbox to the broker, say offline."""
        with self._reload_lock:
            waiters, self._reload_waiters = self._reload_waiters, []
        for done in waiters:
            done.set_result(["the agent is stopping"])
        if self.commands is not None:
            self.commands.stop()
        self._stop_cameras(self.cameras)
        self.pool.stop(SOURCE_STOP_S)
        left = self.delivery.wait_drained(STOP_DRAIN_S)
        if left:
            logger.warning(
                "%d item(s) wait in the outbox for the broker or the platform's receipt; the next start"
                " sends them",
                left,
            )
        self.delivery.close()
        logger.info("stopped")

    def reload(self) -> list[str]:
        """SIGHUP: a new config that passes every check of `run` replaces the cameras; any
        other is logged and ignored, and the old config keeps running. A changed `model`
        section loads the new model first; if it does not load, the reload is refused.
        Returns the problems (empty when the new config runs)."""
        if self.config_path is None:
            return ["no config file to reload"]
        detector = self.detector
        try:
            model = load_config(self.config_path).model
        except ConfigError:
            model = self.cfg.model  # the checks below list the problems
        if model != self.cfg.model:
            try:
                detector = load_model(model, self.cfg)
            except ModelError as err:
                return _refused([str(err)])
        checked = check_file(
            self.config_path, need_mqtt=True, camera_files=False, known_labels=list(detector.labels)
        )
        new = checked.cfg
        if new is None:
            return _refused([str(p) for p in checked.problems])
        old_detector, self.detector = self.detector, detector
        try:
            cameras = self._build_cameras(new)
        except Exception as err:  # never expected after the checks; the old cameras keep running
            self.detector = old_detector
            return _refused([f"{type(err).__name__}: {err}"])
        if new.mqtt != self.cfg.mqtt or new.outbox != self.cfg.outbox or new.commands != self.cfg.commands:
            logger.warning("reload: mqtt, outbox and commands changes take effect at the next restart")
        self._stop_cameras(self.cameras)
        self.cfg = new.model_copy(update={"mqtt": self.cfg.mqtt, "outbox": self.cfg.outbox,
                                          "commands": self.cfg.commands})  # fmt: skip
        self.delivery.reconfigure(homeassistant_of(new))
        self.cameras = cameras
        self._serve(self.cameras)
        logger.info("reloaded %s: %d camera(s)", self.config_path, len(self.cameras))
        return []

    # --- stats -----------------------------------------------------------------------

    def stats(self) -> Mapping[str, Any]:
        cameras = list(self.cameras)
        out: dict[str, Any] = {
            "cameras": {rt.cam.id: rt.stats() for rt in cameras},
            "evidence": self.evidence.counters(),
        }
        if self.delivery.webhook is not None:
            out["webhook"] = self.delivery.webhook.counters()
        ms = [rt.pipeline.detector_ms for rt in cameras if rt.pipeline.frames_analysed]
        if ms:
            out["detector_ms"] = round(sum(ms) / len(ms), 2)
        workers = self.pool.stats()
        for rt in cameras:
            if 0 <= rt.worker < len(workers):
                workers[rt.worker]["cameras"].append(rt.cam.id)
        out["workers"] = workers
        return out


def load_model(model: Any, cfg: Config) -> Detector:
    """The detector of a reloaded `model` section."""
    return detector_of(cfg.model_copy(update={"model": model}))


def _refused(problems: list[str]) -> list[str]:
    shown = [redact(p) for p in problems]
    for p in shown:
        logger.error("reload refused, the old config keeps running: %s", p)
    return shown
