"""One camera's stages after the source: gate → detector → tracker → rules → evidence → sink.

Replay and the live agent both drive a `CameraPipeline`; they differ only in
where frames come from and what clock stamped them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.contract.clips import chunk_count
from edge_agent.core.config import CameraConfig
from edge_agent.core.masks import PrivacyMasks
from edge_agent.core.sink import CountSink, EventSink
from edge_agent.core.types import (
    ClipRef,
    Detections,
    Event,
    EvidenceBytes,
    Frame,
    Owner,
    OwnerSighting,
    SnapshotRef,
    iso_utc,
)
from edge_agent.pipeline.clip_schedule import ClipSchedule, PendingClip
from edge_agent.pipeline.clips import ClipCutter, ClipSettings, clip_window
from edge_agent.pipeline.detect import Detector, StagedDetector
from edge_agent.pipeline.events import EventBuilder, EventDraft
from edge_agent.pipeline.evidence import (
    EvidenceStore,
    draw_detections,
    draw_overlays,
    draw_rule_states,
    encode_jpeg,
    owner_of,
    render_snapshot,
    snapshot_ref,
)
from edge_agent.pipeline.gate import FramePacer, MotionGate
from edge_agent.pipeline.rules.base import Aggregating, Scene
from edge_agent.pipeline.rules.engine import RuleEngine
from edge_agent.pipeline.thumbnail import work_grey
from edge_agent.pipeline.track.tracker import Tracker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """Who speaks: ids that go into every event, and where its snapshots are published.

    `snapshot_topic` maps an event id to its snapshot's MQTT topic; the composition root
    (app/wiring.py) passes `Topics.snapshot`, so the pipeline never builds a topic itself.
    """

    site: str
    device: str
    timezone: str
    snapshot_topic: Callable[[str], str]
    jpeg_quality: int = 85


@dataclass(frozen=True)
class Prepared:
    """A frame the pacer picked, with privacy masks applied, and the gate's verdict on it."""

    frame: Frame
    small: npt.NDArray[np.uint8] | None  # the shared thumbnail (pipeline/thumbnail.py), if made
    fresh: bool  # the detector runs on it (False: the motion gate saw nothing move)
    model_input: object | None = None  # the detector's input, made ahead (a `StagedDetector`)
    prepare_ms: float = 0.0  # the time making it took, counted in `detector_ms`


@dataclass(frozen=True)
class Detected:
    """A prepared frame and its detections."""

    frame: Frame
    dets: Detections
    small: npt.NDArray[np.uint8] | None  # the shared thumbnail (pipeline/thumbnail.py), if made
    fresh: bool = True  # False: the motion gate skipped the detector, `dets` are the last run's


class CameraPipeline:
    def __init__(
        self,
        identity: Identity,
        cam: CameraConfig,
        detector: Detector,
        model_min_score: float,
        sink: EventSink,
        evidence: EvidenceStore | None = None,
        motion_gate: bool = False,
        paced: bool = False,
    ) -> None:
        self.identity = identity
        self.cam = cam
        self.detector = detector
        self._staged = detector if isinstance(detector, StagedDetector) else None
        self.sink = sink
        self.evidence = evidence
        # `paced`: the source already hands over only frames due at `detect.fps` (the live
        # reader, sources/rtsp.py); a second pacer could only drop some of them.
        self.pacer = None if paced else FramePacer(cam.detect.fps)
        self.masks = PrivacyMasks(cam.masks)
        self.motion = MotionGate(max_gap_s=cam.detect.motion_refresh_s) if motion_gate else None
        self._last_dets = Detections.empty()
        self._last_tracked: Detections | None = None
        self.detector_ms = 0.0  # moving average of the detector's time per frame
        self._detector_calls = 0
        self.tracker = Tracker()
        self.engine = RuleEngine(cam, model_min_score, identity.timezone)
        self._rules_use_thumbnail = any(getattr(r.kind, "uses_thumbnail", False) for r in self.engine.runners)
        # `count` aggregates go to the sink when it takes them (replay --counts, the outbox)
        self.counts: CountSink | None = sink if isinstance(sink, CountSink) else None
        counts = self.counts
        if counts is not None:
            for kind, runner in zip(self.engine.aggregating(), self._count_rules(), strict=True):
                kind.resume = _resumer(counts, cam.id, runner)
        self.builder = EventBuilder(identity.site, identity.device, cam.id)
        self.frames_analysed = 0
        self.events_emitted = 0
        self.last_frame: Frame | None = None
        self.last_scene: Scene | None = None
        # evidence clips: set by the composition root where video can be cut (replay: the
        # file; live: the camera's recorder ring, whose clips wait in `clip_schedule`)
        self.clips: ClipCutter | None = None
        self.clip_settings = ClipSettings()
        self.clip_schedule = ClipSchedule()
        self._rule_clips = {r.rule.id: r.rule.clip for r in self.engine.runners}

    def process(self, frame: Frame) -> list[Event]:
        """Feed every source frame; frames between detection slots are dropped here."""
        prepared = self.prepare(frame)
        return [] if prepared is None else self.analyse(self.detect(prepared))

    # `process` in three stages that share no state, so replay can run each on its own
    # thread, one frame behind the other (app/replay.py); in order, they do exactly what
    # `process` does.

    def prepare(self, frame: Frame) -> Prepared | None:
        """Pacing, masks, thumbnail, motion gate and the detector's input: None for a frame
        between detection slots."""
        if self.pacer is not None and not self.pacer.due(frame.media_s):
            return None
        masked = self.masks.apply(frame)
        # One thumbnail for the gate and the background model, made here when a rule reads it;
        # a camera whose rules never read it gives the gate a cheaper one of the gate's own.
        small = work_grey(masked.image) if self._rules_use_thumbnail else None
        fresh = self.motion is None or self.motion.needs_detection(masked.image, frame.media_s, small)
        if not fresh or self._staged is None:
            return Prepared(masked, small, fresh)
        t0 = time.perf_counter()
        model_input = self._staged.prepare(masked.image)
        return Prepared(masked, small, fresh, model_input, (time.perf_counter() - t0) * 1000.0)

    def detect(self, prepared: Prepared) -> Detected:
        """The detector on a prepared frame (the last detections when the gate skipped it)."""
        if not prepared.fresh:
            return Detected(prepared.frame, self._last_dets, prepared.small, fresh=False)
        t0 = time.perf_counter()
        if self._staged is not None and prepared.model_input is not None:
            dets = self._staged.detect_prepared(prepared.model_input)
            ms = (time.perf_counter() - t0) * 1000.0 + prepared.prepare_ms
        else:
            dets = self.detector.detect(prepared.frame.image)
            ms = (time.perf_counter() - t0) * 1000.0
        self._last_dets = dets
        self.detector_ms = ms if self._detector_calls == 0 else 0.9 * self.detector_ms + 0.1 * ms
        self._detector_calls += 1
        return Detected(prepared.frame, dets, prepared.small)

    def analyse(self, detected: Detected) -> list[Event]:
        """Tracker, rules, evidence and sink for one frame `detect` returned."""
        masked = detected.frame
        if not detected.fresh and self._last_tracked is not None and self.tracker.hold(masked.media_s):
            # Nothing moved since the detector last ran and every track is settled: the
            # tracker's last answer stands (`Tracker.hold`), at a fraction of an update.
            tracked = self._last_tracked
        else:
            tracked = self._last_tracked = self.tracker.update(detected.dets, masked.media_s)
        scene = Scene(masked, tracked, self.detector.labels, detected.small)
        self.frames_analysed += 1
        self.last_frame = masked
        self.last_scene = scene
        events = self._emit(self.engine.step(scene), masked)
        if len(self.clip_schedule) and self.clips is not None:
            for pending in self.clip_schedule.due(masked.media_s, self.clips.ready):
                events.append(self._with_clip(pending, masked.media_s))
        closed, running = self.engine.take_counts()
        if self.counts is not None:
            for report in closed:
                self.counts.emit_count(report)
            for report in running:
                self.counts.checkpoint_count(report)
        return events

    def close(self) -> list[Event]:
        """End every open incident at the last analysed frame (the source ended)."""
        if self.last_frame is None:
            return []
        for report in self.engine.close_counts(self.last_frame.media_s):
            if self.counts is not None:
                self.counts.emit_count(report)
                if not report.complete:
                    self.counts.checkpoint_count(report)
        events = self._emit(self.engine.close(self.last_frame.media_s), self.last_frame)
        for pending in self.clip_schedule.take_all():
            events.append(self._with_clip(pending, self.last_frame.media_s))
        return events

    def _count_rules(self) -> list[str]:
        return [r.rule.id for r in self.engine.runners if isinstance(r.kind, Aggregating)]

    @property
    def paced_out(self) -> int:
        """Frames this pipeline's pacer dropped (0 when the source paces)."""
        return self.pacer.skipped if self.pacer is not None else 0

    @property
    def gated_frames(self) -> int:
        return self.motion.skipped if self.motion is not None else 0

    def annotate(self) -> object | None:
        """The last analysed frame with boxes, track ids, zones, lines and rule states drawn."""
        if self.last_frame is None or self.last_scene is None:
            return None
        img = self.last_frame.image.copy()
        draw_overlays(img, self.cam)
        draw_detections(img, self.last_scene.dets, self.detector.labels)
        draw_rule_states(img, self.engine.states(), self.last_frame.media_s)
        return img

    def _owner(self, sighting: OwnerSighting, eid: str) -> tuple[Owner, bytes | None]:
        """The event's `owner` and its crop's JPEG, kept as `<event_id>-owner.jpg` (evidence)."""
        jpeg = _crop_jpeg(sighting.crop, self.identity.jpeg_quality)
        if jpeg is not None and self.evidence is not None:
            self.evidence.save(eid, jpeg, "-owner")
        return owner_of(sighting, jpeg), jpeg

    def _clip(
        self, parts: list[tuple[float, float]], eid: str, offset: float
    ) -> tuple[ClipRef, bytes] | None:
        """The clip of `parts` and its bytes, kept as `<event_id>.mp4` (evidence); None when none
        could be cut."""
        assert self.clips is not None
        clip = self.clips.cut(parts)
        if clip is None:
            return None
        if self.evidence is not None:
            self.evidence.save(eid, clip.data, ext=".mp4")
        return ClipRef(
            sha256=clip.sha256,
            bytes=len(clip.data),
            chunks=chunk_count(len(clip.data)),
            start_media_s=clip.start_media_s,
            end_media_s=clip.end_media_s,
            started_at=iso_utc(clip.start_media_s + offset),
            duration_s=clip.duration_s,
        ), clip.data

    def _emit(self, drafts: list[EventDraft], frame: Frame) -> list[Event]:
        events: list[Event] = []
        offset = frame.wall_ts - frame.media_s
        for draft in drafts:
            if draft.phase == "start" and len(self.clip_schedule):
                for pending in self.clip_schedule.ended_before(draft):  # its end goes first
                    events.append(self._with_clip(pending, frame.media_s))
            eid = self.builder.event_id_for(draft, offset)
            if draft.phase == "end" and self.clip_schedule.hold_end(eid, draft):
                continue  # it goes out with the clip (clip_schedule.py)
            jpeg: bytes | None = None
            snap = None
            if draft.phase == "start":
                caption = f"{draft.rule} ({draft.kind}) t={draft.media_s:.1f}s"
                img = render_snapshot(frame.image, self.cam, draft.objects, draft.zone, draft.line, caption)
                jpeg = encode_jpeg(img, self.identity.jpeg_quality)
                snap = snapshot_ref(jpeg, self.identity.snapshot_topic(eid), frame.width, frame.height)
                if self.evidence is not None:
                    self.evidence.save(eid, jpeg)
            owner, owner_jpeg = None, None
            if draft.owner is not None and not self.builder.knows_owner(draft):
                owner, owner_jpeg = self._owner(draft.owner, eid)
            cut = None
            if draft.phase == "start" and self.clips is not None and draft.severity != "info":
                settings = self.clip_settings.for_rule(self._rule_clips.get(draft.rule))
                if settings.enabled:
                    parts = clip_window(draft.kind, draft.since_s, draft.media_s, draft.owner, settings)
                    if self.clips.live:
                        self.clip_schedule.add(PendingClip(eid, draft, parts, offset))
                    else:
                        cut = self._clip(parts, eid, offset)
            events.append(self._send(draft, offset, snap, jpeg, owner, owner_jpeg, cut))
        self.events_emitted += len(events)
        return events

    def _with_clip(self, pending: PendingClip, now_s: float) -> Event:
        """The phase that carries a live clip: the held `end`, else an `update` now."""
        cut = self._clip(pending.parts, pending.event_id, pending.offset)
        draft = pending.held_end or replace(
            pending.start, phase="update", media_s=max(now_s, pending.start.media_s)
        )
        self.events_emitted += 1
        return self._send(draft, pending.offset, None, None, None, None, cut)

    def _send(
        self,
        draft: EventDraft,
        offset: float,
        snap: SnapshotRef | None,
        jpeg: bytes | None,
        owner: Owner | None,
        owner_jpeg: bytes | None,
        cut: tuple[ClipRef, bytes] | None,
    ) -> Event:
        clip, clip_data = cut if cut is not None else (None, None)
        event = self.builder.build(draft, offset, snap, owner, clip)
        if owner_jpeg is not None or clip_data is not None:
            # The bytes ride with the event to the sinks that deliver them (the outbox).
            event = replace(event, evidence=EvidenceBytes(owner_jpeg, clip_data))
        self.sink.emit(event, jpeg)
        return event


def _crop_jpeg(crop: np.ndarray, quality: int) -> bytes | None:
    try:
        return encode_jpeg(crop, quality)
    except ValueError:
        logger.warning("cannot encode an owner crop of %s pixels", crop.shape[:2])
        return None


def _resumer(counts: CountSink, camera: str, rule: str) -> Callable[[float], Mapping[str, Any] | None]:
    def resume(interval_start_ts: float) -> Mapping[str, Any] | None:
        return counts.resume_count(camera, rule, interval_start_ts)

    return resume
