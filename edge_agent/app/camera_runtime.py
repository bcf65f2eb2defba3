"""One live camera inside `edge-agent run`: its reader, recording, pipeline, health and faults.

Each camera is a fault boundary: an exception in its pipeline (a rule bug, a frame the
detector cannot take, a full disk under the evidence store) is logged once with the camera
id, counted in stats, published as a `camera_health` problem, and that camera alone
restarts, with backoff, while the others go on. It is stepped by one detection worker at a
time (app/workers.py) and every step holds its `lock`, so its pipeline state is never touched
by two threads at once, and the main thread's restart and close never land in the middle
of a step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_agent.app.health import CameraHealth
from edge_agent.app.health_events import HealthEvents
from edge_agent.app.wiring import camera_pipeline
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import CameraConfig, redact
from edge_agent.core.sink import EventSink
from edge_agent.core.types import Event
from edge_agent.delivery.status_board import StatusBoard
from edge_agent.pipeline.camera import CameraPipeline
from edge_agent.sources.rtsp import RtspSource

if TYPE_CHECKING:
    from edge_agent.app.agent import Agent
    from edge_agent.app.camera_recording import CameraRecording

logger = logging.getLogger(__name__)

RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 60.0
STABLE_S = 30.0  # a restarted camera that ran this long without a fault resets its backoff


class CameraRuntime:
    """One camera's reader, health, pipeline and fault state; the unit that restarts alone."""

    def __init__(
        self,
        agent: Agent,
        cam: CameraConfig,
        sink: EventSink,
        board: StatusBoard,
        ready: Callable[[CameraRuntime], None],
    ) -> None:
        self.agent = agent
        self.cam = cam
        self.sink = sink
        self.board = board  # where the camera's state goes for the publisher
        self._ready = ready  # the worker pool's queue: told by the reader of each new frame
        self.worker = -1  # the detection worker that analysed its last frame (set by the worker)
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
        self.recording: CameraRecording | None = None
        self.pipeline, self.source = self._parts()

    def _parts(self) -> tuple[CameraPipeline, RtspSource]:
        cfg = self.agent.cfg
        pipeline = camera_pipeline(
            cfg, self.cam, self.agent.detector, self.sink, self.agent.evidence, paced=True
        )
        # The clips' ring (app/camera_recording.py): filled by this camera's reader, or by a
        # recorder of its own for a separate record_url; a restart starts a new one.
        self.recording = None
        if cfg.evidence.clip.record:
            # PyAV (about 24 MB of libraries) is loaded only by an agent whose cameras record
            from edge_agent.app.camera_recording import CameraRecording

            self.recording = CameraRecording(cfg, self.cam)
        if self.recording is not None:
            pipeline.clips = self.recording.cutter
            pipeline.clip_settings = self.recording.settings
        # The source never raises for a camera problem (a missing file, a bad URL): it goes
        # offline with the reason and retries, inside its own reader thread. It paces the
        # frames to `detect.fps` itself, so the others are never converted to pictures.
        ring = self.recording.reader_ring if self.recording is not None else None
        return pipeline, RtspSource(
            self.cam, on_frame=self._frame_arrived, pace_fps=self.cam.detect.fps, ring=ring
        )

    def _frame_arrived(self) -> None:
        self._ready(self)

    @property
    def events(self) -> int:
        return self._past_events + self.pipeline.events_emitted

    def start(self) -> None:
        self.source.start()
        if self.recording is not None:
            self.recording.start(self.source)
        self.running_since = time.monotonic()
        logger.info("camera %s: reading %s", self.cam.id, redact(self.cam.url))

    def step(self) -> bool:
        """Analyse the next queued frame if there is one; False when there was none or the camera waits."""
        with self.lock:
            return self._step()

    def _step(self) -> bool:
        if self.restart_at is not None or self.closed:
            return False
        frame = self.source.next_frame(self.last_index)
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
        if self.recording is not None:
            self.recording.stop(0.0)
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
        if self.worker >= 0:
            entry["worker"] = self.worker
        if self.recording is not None:
            entry["recording"] = self.recording.stats()
        return entry


def _reason(error: str | None, state: str) -> str:
    return f" ({redact(error)})" if error and state != "online" else ""
