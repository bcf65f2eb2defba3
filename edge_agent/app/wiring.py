"""The composition root: the one place that turns a config into running parts.

`run` (the daemon), `replay`, `replay --publish`, doctor and the benchmarks all build their
topics, detector, camera pipelines and delivery here, so live and replay cannot drift apart:
a new stage or sink is wired once, in this module.
"""

from __future__ import annotations

from edge_agent.app.workers import default_workers
from edge_agent.contract.topics import Topics
from edge_agent.core.config import CameraConfig, Config
from edge_agent.core.sink import EventSink
from edge_agent.delivery.homeassistant import HaSetup, rules_of
from edge_agent.delivery.service import Delivery
from edge_agent.pipeline.camera import CameraPipeline, Identity
from edge_agent.pipeline.detect import Detector
from edge_agent.pipeline.detect.onnx import load_detector
from edge_agent.pipeline.evidence import EvidenceStore

DEFAULT_TOPIC_PREFIX = "eagleeye"  # replay without an mqtt section still names snapshot topics


def topics_of(cfg: Config) -> Topics:
    """The device's MQTT topic tree."""
    prefix = cfg.mqtt.topic_prefix if cfg.mqtt is not None else DEFAULT_TOPIC_PREFIX
    return Topics(prefix, cfg.site.id, cfg.device.id)


def identity_of(cfg: Config) -> Identity:
    """Who speaks in every event of this config, and where its snapshots go."""
    return Identity(
        site=cfg.site.id,
        device=cfg.device.id,
        timezone=cfg.site.timezone,
        snapshot_topic=topics_of(cfg).snapshot,
        jpeg_quality=cfg.evidence.jpeg_quality,
    )


def detector_of(cfg: Config) -> Detector:
    """The detector of `cfg.model`, shared by every camera and every detection worker."""
    return load_detector(cfg.model)


def worker_count(cfg: Config) -> int:
    """How many detection workers `run` starts: `model.workers`, else two per physical core."""
    return cfg.model.workers or default_workers()


def camera_pipeline(
    cfg: Config,
    cam: CameraConfig,
    detector: Detector,
    sink: EventSink,
    evidence: EvidenceStore | None = None,
    *,
    motion_gate: bool | None = None,
    paced: bool = False,
) -> CameraPipeline:
    """One camera's pipeline; `motion_gate` None takes the camera's `detect.motion_gate`.

    `paced`: the source hands over only frames due at `detect.fps` (the live reader)."""
    return CameraPipeline(
        identity_of(cfg),
        cam,
        detector,
        cfg.model.min_score,
        sink,
        evidence,
        motion_gate=cam.detect.motion_gate if motion_gate is None else motion_gate,
        paced=paced,
    )


# Rule kinds whose incidents start and never end: their Home Assistant sensor pulses.
INSTANT_KINDS = ("line_cross",)


def homeassistant_of(cfg: Config) -> HaSetup | None:
    """What Home Assistant discovery announces for `cfg`; None when discovery is off."""
    if not cfg.homeassistant.discovery:
        return None
    cameras = [(cam.id, [(r.id, r.kind) for r in cam.rules]) for cam in cfg.cameras]
    return HaSetup(cfg.homeassistant.prefix, cfg.site.name, rules_of(cameras, INSTANT_KINDS))


def delivery_of(cfg: Config) -> Delivery:
    """The outbox, its MQTT publisher, its status board and the sink the pipelines write into."""
    return Delivery(cfg, topics_of(cfg), homeassistant=homeassistant_of(cfg))
