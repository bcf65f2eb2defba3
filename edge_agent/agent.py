"""`edge-agent run`: every camera, live, until SIGTERM. The one module that knows every concrete class.

Threads, not processes: each camera has a reader thread that keeps only its
newest frame (`RtspSource`); one detection loop here serves every camera in
turn at its `detect.fps`; paho runs the MQTT thread. A late alert is worth less
than a fresh one, so frames the loop cannot keep up with are dropped, counted,
never queued.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from edge_agent.config import CameraConfig, Config, ConfigError, check_config, load_config, redact
from edge_agent.delivery import Delivery
from edge_agent.detect import Detector
from edge_agent.detect.onnx import load_detector
from edge_agent.events import event_id as make_event_id
from edge_agent.evidence import EvidenceStore
from edge_agent.health import CameraHealth
from edge_agent.pipeline import CameraPipeline
from edge_agent.publish import EventSink
from edge_agent.replay import identity_of
from edge_agent.sources.rtsp import RtspSource
from edge_agent.systemd import Watchdog, sd_notify
from edge_agent.types import Event, iso_utc

logger = logging.getLogger(__name__)

HEALTH_RULE = "camera-health"
HEALTH_EVERY_S = 0.5
IDLE_SLEEP_S = 0.005
STOP_DRAIN_S = 5.0
SOURCE_STOP_S = 2.0


@dataclass
class CameraRuntime:
    cam: CameraConfig
    source: RtspSource
    health: CameraHealth
    pipeline: CameraPipeline
    last_index: int = -1
    outage: tuple[str, float] | None = None  # (event id, wall time) of an open offline incident
    events: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Agent:
    """Owns the running cameras, the shared detector and the delivery; reloads on SIGHUP."""

    def __init__(self, cfg: Config, config_path: str | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.detector: Detector = load_detector(cfg.model)
        self.delivery = Delivery(cfg, stats_provider=self.stats)
        self.evidence = EvidenceStore(cfg.evidence.dir)
        self.cameras: list[CameraRuntime] = []
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._started = time.monotonic()
        self.watchdog = Watchdog()

    # --- lifecycle -------------------------------------------------------------------

    def _build_cameras(self, cfg: Config, sink: EventSink) -> list[CameraRuntime]:
        identity = identity_of(cfg)
        out = []
        for cam in cfg.cameras:
            pipeline = CameraPipeline(
                identity,
                cam,
                self.detector,
                cfg.model.min_score,
                sink,
                self.evidence,
                motion_gate=cam.detect.motion_gate,
            )
            out.append(
                CameraRuntime(cam, RtspSource(cam), CameraHealth(cam.id, cam.offline_after_s), pipeline)
            )
        return out

    def start(self) -> None:
        self.delivery.start()
        self.cameras = self._build_cameras(self.cfg, self.delivery.sink)
        for rt in self.cameras:
            rt.source.start()
            logger.info("camera %s: reading %s", rt.cam.id, redact(rt.cam.url))

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

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
            worked = False
            for rt in self.cameras:
                frame = rt.source.latest(rt.last_index)
                if frame is None:
                    continue
                rt.last_index = frame.index
                rt.events += len(rt.pipeline.process(frame))
                worked = True
            now = time.monotonic()
            if now >= next_health:
                next_health = now + HEALTH_EVERY_S
                for rt in self.cameras:
                    self._check_health(rt, now)
                self.watchdog.kick()
            if not worked:
                self._stop.wait(IDLE_SLEEP_S)

    def _stop_cameras(self, cameras: list[CameraRuntime]) -> None:
        # Ask every reader first, then wait on one shared deadline: ten hung cameras
        # must not add up to ten read timeouts when systemd waits for the stop.
        for rt in cameras:
            rt.source.stop(0.0)
        deadline = time.monotonic() + SOURCE_STOP_S
        for rt in cameras:
            rt.source.stop(max(0.0, deadline - time.monotonic()))
        for rt in cameras:
            rt.pipeline.close()

    def shutdown(self) -> None:
        """Stop readers, end open incidents, flush the outbox to the broker, say offline."""
        self._stop_cameras(self.cameras)
        left = self.delivery.wait_drained(STOP_DRAIN_S)
        if left:
            logger.warning("%d item(s) wait in the outbox for the broker; the next start sends them", left)
        self.delivery.close()
        logger.info("stopped")

    def reload(self) -> None:
        """SIGHUP: a valid new config replaces the cameras; an invalid one is logged and ignored."""
        if self.config_path is None:
            return
        try:
            new = load_config(self.config_path)
            problems = check_config(new, self.detector.labels)
        except ConfigError as err:
            problems = err.problems
        if problems:
            for p in problems:
                logger.error("reload refused, the old config keeps running: %s", redact(str(p)))
            return
        if new.model != self.cfg.model or new.mqtt != self.cfg.mqtt or new.outbox != self.cfg.outbox:
            logger.warning("reload: model, mqtt and outbox changes take effect at the next restart")
        self._stop_cameras(self.cameras)
        self.cfg = new
        self.cameras = self._build_cameras(new, self.delivery.sink)
        for rt in self.cameras:
            rt.source.start()
        logger.info("reloaded %s: %d camera(s)", self.config_path, len(self.cameras))

    # --- health ----------------------------------------------------------------------

    def _check_health(self, rt: CameraRuntime, now: float) -> None:
        state = rt.health.update(rt.source.status, now)
        if state is None:
            return
        logger.warning("camera %s: %s%s", rt.cam.id, state, _reason(rt.source.last_error, state))
        self.delivery.publisher.set_camera_status(rt.cam.id, state, rt.health.since)
        wall = time.time()
        if state == "offline" and rt.outage is None:
            eid = make_event_id(self.cfg.device.id, rt.cam.id, HEALTH_RULE, rt.last_index, "offline", wall)
            rt.outage = (eid, wall)
            self.delivery.sink.emit(self._health_event(rt, eid, "start", wall, wall), None)
        elif state == "online" and rt.outage is not None:
            eid, since = rt.outage
            rt.outage = None
            self.delivery.sink.emit(self._health_event(rt, eid, "end", since, wall), None)

    def _health_event(self, rt: CameraRuntime, eid: str, phase: str, since: float, wall: float) -> Event:
        detail = rt.source.last_error
        return Event(
            event_id=eid,
            phase=phase,
            site=self.cfg.site.id,
            device=self.cfg.device.id,
            camera=rt.cam.id,
            rule=HEALTH_RULE,
            kind="camera_health",
            severity="warning",
            zone=None,
            label=None,
            score=None,
            objects=(),
            started_at=iso_utc(since),
            ts=iso_utc(wall),
            media_s=round(time.monotonic() - self._started, 3),
            duration_s=wall - since,
            snapshot=None,
            details={"state": "offline" if phase == "start" else "online"}
            | ({"reason": redact(detail)} if detail and phase == "start" else {}),
        )

    # --- stats -----------------------------------------------------------------------

    def stats(self) -> Mapping[str, Any]:
        cams: dict[str, Any] = {}
        for rt in list(self.cameras):
            entry = rt.health.stats(rt.source)
            entry["skipped_frames"] = rt.pipeline.pacer.skipped + rt.pipeline.gated_frames
            entry["gated_frames"] = rt.pipeline.gated_frames
            entry["analysed_frames"] = rt.pipeline.frames_analysed
            entry["detector_ms"] = round(rt.pipeline.detector_ms, 2)
            entry["events"] = rt.events
            cams[rt.cam.id] = entry
        out: dict[str, Any] = {"cameras": cams}
        ms = [rt.pipeline.detector_ms for rt in self.cameras if rt.pipeline.frames_analysed]
        if ms:
            out["detector_ms"] = round(sum(ms) / len(ms), 2)
        return out


def _reason(error: str | None, state: str) -> str:
    return f" ({redact(error)})" if error and state != "online" else ""
