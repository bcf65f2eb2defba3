"""`edge-agent run`: every camera, live, until SIGTERM.

Threads, not processes: each camera has a reader thread that keeps only its
newest frame (`RtspSource`); one detection loop here serves every camera in
turn at its `detect.fps` and sleeps until some reader has a new frame; paho
runs the MQTT thread. A late alert is worth less than a fresh one, so frames
the loop cannot keep up with are dropped, counted, never queued.

Each camera is a fault boundary (`CameraRuntime`): an exception in its
pipeline (a rule bug, a frame the detector cannot take, a full disk under the
evidence store) is logged once with the camera id, counted in stats, published
as a `camera_health` problem, and that camera alone restarts, with backoff,
while the others go on.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from edge_agent.app.checks import check_file
from edge_agent.app.health import CameraHealth
from edge_agent.app.health_events import HealthEvents
from edge_agent.app.systemd import Watchdog, sd_notify
from edge_agent.app.wiring import camera_pipeline, delivery_of, detector_of, homeassistant_of
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import CameraConfig, Config, redact
from edge_agent.core.sink import EventSink
from edge_agent.core.types import Event
from edge_agent.pipeline.camera import CameraPipeline
from edge_agent.pipeline.detect import Detector
from edge_agent.pipeline.evidence import EvidenceStore
from edge_agent.sources.rtsp import RtspSource

logger = logging.getLogger(__name__)

HEALTH_EVERY_S = 0.5
STOP_DRAIN_S = 5.0
SOURCE_STOP_S = 2.0
RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 60.0
STABLE_S = 30.0  # a restarted camera that ran this long without a fault resets its backoff


class CameraRuntime:
    """One camera's reader, health, pipeline and fault state; the unit that restarts alone."""

    def __init__(self, agent: Agent, cam: CameraConfig, sink: EventSink) -> None:
        self.agent = agent
        self.cam = cam
        self.sink = sink
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
            self.agent.cfg, self.cam, self.agent.detector, self.sink, self.agent.evidence
        )
        # The source never raises for a camera problem (a missing file, a bad URL): it goes
        # offline with the reason and retries, inside its own reader thread.
        return pipeline, RtspSource(self.cam, on_frame=self.agent.frame_ready.set)

    @property
    def events(self) -> int:
        return self._past_events + self.pipeline.events_emitted

    def start(self) -> None:
        self.source.start()
        self.running_since = time.monotonic()
        logger.info("camera %s: reading %s", self.cam.id, redact(self.cam.url))

    def step(self) -> bool:
        """Analyse the newest frame if there is one; False when there was none or the camera waits."""
        if self.restart_at is not None:
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
        self.agent.delivery.publisher.set_camera_status(self.cam.id, state, self.health.since)

    def _emit(self, event: Event | None) -> None:
        if event is not None:  # None: the incident was already open (or not open) there
            self.sink.emit(event, None)

    def stats(self) -> dict[str, Any]:
        entry = self.health.stats(self.source)
        pipeline = self.pipeline
        entry["skipped_frames"] = pipeline.pacer.skipped + pipeline.gated_frames
        entry["gated_frames"] = pipeline.gated_frames
        entry["analysed_frames"] = pipeline.frames_analysed
        entry["detector_ms"] = round(pipeline.detector_ms, 2)
        entry["events"] = self.events
        entry["pipeline_faults"] = self.faults
        entry["pipeline_restarts"] = self.restarts
        return entry


class Agent:
    """Owns the running cameras, the shared detector and the delivery; reloads on SIGHUP."""

    def __init__(self, cfg: Config, config_path: str | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.detector: Detector = detector_of(cfg)
        self.delivery = delivery_of(cfg, stats_provider=self.stats)
        self.evidence = EvidenceStore(cfg.evidence.dir, cfg.evidence.max_mb, cfg.evidence.reserve_mb)
        self.cameras: list[CameraRuntime] = []
        self.frame_ready = threading.Event()  # set by any reader thread on a new frame
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.watchdog = Watchdog()

    # --- lifecycle -------------------------------------------------------------------

    def _build_cameras(self, cfg: Config) -> list[CameraRuntime]:
        return [CameraRuntime(self, cam, self.delivery.sink) for cam in cfg.cameras]

    def start(self) -> None:
        self.delivery.start()
        self.cameras = self._build_cameras(self.cfg)
        for rt in self.cameras:
            rt.start()

    def request_stop(self) -> None:
        self._stop.set()
        self.frame_ready.set()

    def request_reload(self) -> None:
        self._reload.set()
        self.frame_ready.set()

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
        next_health = 0.0
        while not self._stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            # Clear before looking: a frame that lands while the cameras are served sets
            # the flag again, so the wait below never sleeps past it.
            self.frame_ready.clear()
            worked = False
            for rt in self.cameras:
                worked |= rt.step()
            now = time.monotonic()
            if now >= next_health:
                next_health = now + HEALTH_EVERY_S
                for rt in self.cameras:
                    rt.restart_if_due(now)
                    rt.check_health(now)
                self.delivery.outbox_sink.retry()  # events held in memory while the disk refused them
                self.watchdog.kick()
            if not worked:
                self.frame_ready.wait(max(0.0, next_health - time.monotonic()))

    def _stop_cameras(self, cameras: list[CameraRuntime]) -> None:
        # Ask every reader first, then wait on one shared deadline: ten hung cameras
        # must not add up to ten read timeouts when systemd waits for the stop.
        for rt in cameras:
            rt.source.stop(0.0)
        deadline = time.monotonic() + SOURCE_STOP_S
        for rt in cameras:
            rt.source.stop(max(0.0, deadline - time.monotonic()))
        for rt in cameras:
            try:
                rt.pipeline.close()
            except Exception:  # a camera that broke must not keep the others' incidents open
                logger.exception("camera %s: closing its pipeline failed", rt.cam.id)

    def shutdown(self) -> None:
        """Stop readers, end open incidents, flush the outbox to the broker, say offline."""
        self._stop_cameras(self.cameras)
        left = self.delivery.wait_drained(STOP_DRAIN_S)
        if left:
            logger.warning("%d item(s) wait in the outbox for the broker; the next start sends them", left)
        self.delivery.close()
        logger.info("stopped")

    def reload(self) -> None:
        """SIGHUP: a new config that passes every check of `run` replaces the cameras; any
        other is logged and ignored, and the old config keeps running."""
        if self.config_path is None:
            return
        checked = check_file(
            self.config_path, need_mqtt=True, camera_files=False, known_labels=list(self.detector.labels)
        )
        new = checked.cfg
        if new is None:
            for p in checked.problems:
                logger.error("reload refused, the old config keeps running: %s", redact(str(p)))
            return
        try:
            cameras = self._build_cameras(new)
        except Exception as err:  # never expected after the checks; the old cameras keep running
            logger.error(
                "reload refused, the old config keeps running: %s", redact(f"{type(err).__name__}: {err}")
            )
            return
        if new.model != self.cfg.model or new.mqtt != self.cfg.mqtt or new.outbox != self.cfg.outbox:
            logger.warning("reload: model, mqtt and outbox changes take effect at the next restart")
        self._stop_cameras(self.cameras)
        self.cfg = new
        self.delivery.reconfigure(homeassistant_of(new))
        self.cameras = cameras
        for rt in self.cameras:
            rt.start()
        logger.info("reloaded %s: %d camera(s)", self.config_path, len(self.cameras))

    # --- stats -----------------------------------------------------------------------

    def stats(self) -> Mapping[str, Any]:
        cameras = list(self.cameras)
        out: dict[str, Any] = {
            "cameras": {rt.cam.id: rt.stats() for rt in cameras},
            "evidence": self.evidence.counters(),
        }
        ms = [rt.pipeline.detector_ms for rt in cameras if rt.pipeline.frames_analysed]
        if ms:
            out["detector_ms"] = round(sum(ms) / len(ms), 2)
        return out


def _reason(error: str | None, state: str) -> str:
    return f" ({redact(error)})" if error and state != "online" else ""
