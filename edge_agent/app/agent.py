"""`edge-agent run`: every camera, live, until SIGTERM.

Threads, not processes: each camera has a reader thread that keeps only its
newest frame (`RtspSource`); detection workers (`app/workers.py`, two per
physical core by default, `model.workers`) each serve their share of the
cameras in turn at its `detect.fps` and sleep until one of their readers has a
new frame; the main thread here checks health, restarts cameras, reloads and
kicks the systemd watchdog; paho runs the MQTT thread. A late alert is worth
less than a fresh one, so frames a worker cannot keep up with are dropped,
counted, never queued. A camera is served by one worker at a time (the pool
may move it to another by its measured CPU) and every step holds its `lock`,
so its pipeline state never meets two threads at once; the lock also keeps the
main thread's restart and close from landing in the middle of a step.

Each camera is a fault boundary (`CameraRuntime`): an exception in its
pipeline (a rule bug, a frame the detector cannot take, a full disk under the
evidence store) is logged once with the camera id, counted in stats, published
as a `camera_health` problem, and that camera alone restarts, with backoff,
while the others go on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent.app.checks import check_file
from edge_agent.app.command_actions import command_listener
from edge_agent.app.config import load_config
from edge_agent.app.health import CameraHealth
from edge_agent.app.health_events import HealthEvents
from edge_agent.app.systemd import Watchdog, sd_notify
from edge_agent.app.wiring import (
    camera_pipeline,
    delivery_of,
    detector_of,
    homeassistant_of,
    worker_count,
)
from edge_agent.app.workers import WorkerPool, assign_by_load
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import CameraConfig, Config, ConfigError, redact
from edge_agent.core.sink import EventSink
from edge_agent.core.types import Event
from edge_agent.delivery.status_board import StatusBoard
from edge_agent.pipeline.camera import CameraPipeline
from edge_agent.pipeline.detect import Detector
from edge_agent.pipeline.detect.models import ModelError
from edge_agent.pipeline.evidence import EvidenceStore
from edge_agent.sources.rtsp import RtspSource

logger = logging.getLogger(__name__)

HEALTH_EVERY_S = 0.5
STOP_DRAIN_S = 5.0
SOURCE_STOP_S = 2.0
RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 60.0
STABLE_S = 30.0  # a restarted camera that ran this long without a fault resets its backoff
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter number
WORKER_STUCK_S = 60.0  # a worker whose loop has not turned for this long stops the watchdog kicks
REBALANCE_EVERY_S = 10.0  # cameras re-dealt to workers by their measured CPU (app/workers.py)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the reader and worker threads start.

    glibc gives each thread that allocates its own arena (up to 8 per core), and an
    arena keeps the frame-sized buffers its thread freed: with a reader per camera
    that is several MB of RSS per camera that nothing uses. Two arenas, the usual
    setting for threaded services (`MALLOC_ARENA_MAX=2`), keep the RSS flat; an
    explicit `MALLOC_ARENA_MAX` in the environment wins. False where this is not glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


class CameraRuntime:
    """One camera's reader, health, pipeline and fault state; the unit that restarts alone."""

    def __init__(
        self,
        agent: Agent,
        cam: CameraConfig,
        sink: EventSink,
        board: StatusBoard,
        wake: threading.Event,
        worker: int = 0,
    ) -> None:
        self.agent = agent
        self.cam = cam
        self.sink = sink
        self.board = board  # where the camera's state goes for the publisher
        self.wake = wake  # the serving worker's: set by the reader on each new frame
        self.worker = worker
        self.lock = threading.Lock()  # held by the worker's step, the restart and the close
        self.closed = False
        self.health = CameraHealth(cam.id, cam.offline_after_s)
        self.health_events = HealthEvents(agent.cfg.site.id, agent.cfg.device.id, cam.id)
        self.backoff = Backoff(RESTART_INITIAL_S, RESTART_MAX_S)
        self.last_index = -1
        self.faults = 0  # pipeline exceptions caught by the boundary
        self.restarts = 0
        self.restart_at: float | None = None  # monotonic time of the pending restart
        self.running_since = 0.0
        self._past_events = 0  # events of pipelines replaced by a restart
        self.pipeline, self.source = self._parts()

    def _parts(self) -> tuple[CameraPipeline, RtspSource]:
        pipeline = camera_pipeline(
            self.agent.cfg, self.cam, self.agent.detector, self.sink, self.agent.evidence, paced=True
        )
        # The source never raises for a camera problem (a missing file, a bad URL): it goes
        # offline with the reason and retries, inside its own reader thread. It paces the
        # frames to `detect.fps` itself, so the others are never converted to pictures.
        return pipeline, RtspSource(self.cam, on_frame=self._frame_arrived, pace_fps=self.cam.detect.fps)

    def _frame_arrived(self) -> None:
        self.wake.set()  # looked up at each frame: `WorkerPool.rebalance` may move the camera

    @property
    def events(self) -> int:
        return self._past_events + self.pipeline.events_emitted

    def start(self) -> None:
        self.source.start()
        self.running_since = time.monotonic()
        logger.info("camera %s: reading %s", self.cam.id, redact(self.cam.url))

    def step(self) -> bool:
        """Analyse the newest frame if there is one; False when there was none or the camera waits."""
        with self.lock:
            return self._step()

    def _step(self) -> bool:
        if self.restart_at is not None or self.closed:
            return False
        frame = self.source.latest(self.last_index)
        if frame is None:
            return False
        self.last_index = frame.index
        self.health_events.seen(frame)
        try:
            self.pipeline.process(frame)
        except Exception as err:  # the fault boundary: this camera stops, the others go on
            self._fault(err)
            return True
        if self.health_events.fault_open and self.restarts:
            self._emit(self.health_events.fault_end())
        if self.restarts and time.monotonic() - self.running_since >= STABLE_S:
            self.backoff.reset()
        return True

    def _fault(self, err: Exception) -> None:
        self.faults += 1
        delay = self.backoff.next_delay()
        logger.exception(
            "camera %s: pipeline failed (%s); restarting this camera in %.1f s", self.cam.id, err, delay
        )
        self.source.stop(0.0)
        self.restart_at = time.monotonic() + delay
        self._emit(self.health_events.fault_start(f"{type(err).__name__}: {err}", self.faults))

    def restart_if_due(self, now: float) -> None:
        if self.restart_at is None or now < self.restart_at:
            return
        with self.lock:
            if not self.closed:
                self._restart()

    def _restart(self) -> None:
        self.restart_at = None
        self.source.stop(0.0)  # asked at the fault; a reader stuck in a read ends at its timeout
        self._past_events += self.pipeline.events_emitted
        self.pipeline, self.source = self._parts()
        self.last_index = -1
        self.restarts += 1
        self.health_events.restarted()
        self.start()

    def check_health(self, now: float) -> None:
        state = self.health.update(self.source.status, now)
        if state is None:
            return
        error = self.source.last_error
        # Back online is good news (INFO); offline and stalled need someone to look (WARNING).
        level = logging.INFO if state == "online" else logging.WARNING
        logger.log(level, "camera %s: %s%s", self.cam.id, state, _reason(error, state))
        if state == "offline":
            self._emit(self.health_events.outage_start(self.last_index, redact(error) if error else None))
        elif state == "online":
            self._emit(self.health_events.outage_end())
        # The incident is in the outbox before the status is asked for, so one publisher pass
        # sends both: a platform that sees the camera offline finds the incident beside it.
        self.board.set_camera_status(self.cam.id, state, self.health.since)

    def _emit(self, event: Event | None) -> None:
        if event is not None:  # None: the incident was already open (or not open) there
            self.sink.emit(event, None)

    def stats(self) -> dict[str, Any]:
        entry = self.health.stats(self.source)
        pipeline = self.pipeline
        entry["skipped_frames"] = self.source.frames_paced_out + pipeline.paced_out + pipeline.gated_frames
        entry["gated_frames"] = pipeline.gated_frames
        entry["analysed_frames"] = pipeline.frames_analysed
        entry["detector_ms"] = round(pipeline.detector_ms, 2)
        entry["events"] = self.events
        entry["pipeline_faults"] = self.faults
        entry["pipeline_restarts"] = self.restarts
        entry["worker"] = self.worker
        return entry


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
        self.evidence = EvidenceStore(cfg.evidence.dir, cfg.evidence.max_mb, cfg.evidence.reserve_mb)
        self.cameras: list[CameraRuntime] = []
        self.wake = threading.Event()  # the main loop's: stop and reload requests
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._reload_lock = threading.Lock()
        self._reload_waiters: list[Future[list[str]]] = []
        self.watchdog = Watchdog()
        self._dealt_at = time.monotonic()  # the cameras' last deal to workers
        self.commands = command_listener(self, fetch_model, interrupted)  # None: remote operations off

    # --- lifecycle -------------------------------------------------------------------

    def _build_cameras(self, cfg: Config) -> list[CameraRuntime]:
        """The cameras of `cfg`, each dealt to a worker by its `detect.fps` (not yet started)."""
        groups = assign_by_load([cam.detect.fps for cam in cfg.cameras], len(self.pool))
        built: dict[int, CameraRuntime] = {}
        for worker, indices in zip(self.pool.workers, groups, strict=True):
            for i in indices:
                built[i] = CameraRuntime(
                    self, cfg.cameras[i], self.delivery.sink, self.delivery.board, worker.wake, worker.index
                )
        return [built[i] for i in range(len(cfg.cameras))]

    def _serve(self, cameras: list[CameraRuntime]) -> None:
        for rt in cameras:
            rt.start()
        for worker in self.pool.workers:
            worker.take_costs()  # what the old cameras cost says nothing about the new deal
            worker.assign([rt for rt in cameras if rt.worker == worker.index])
        self._dealt_at = time.monotonic()

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
            if now - self._dealt_at >= REBALANCE_EVERY_S:
                self._dealt_at = now
                self.pool.rebalance(self.cameras)
            self.wake.wait(HEALTH_EVERY_S)
            self.wake.clear()

    def _stop_cameras(self, cameras: list[CameraRuntime]) -> None:
        # Ask every reader first, then wait on one shared deadline: ten hung cameras
        # must not add up to ten read timeouts when systemd waits for the stop.
        for rt in cameras:
            rt.source.stop(0.0)
        deadline = time.monotonic() + SOURCE_STOP_S
        for rt in cameras:
            rt.source.stop(max(0.0, deadline - time.monotonic()))
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


def _reason(error: str | None, state: str) -> str:
    return f" ({redact(error)})" if error and state != "online" else ""
