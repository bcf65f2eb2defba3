"""Live clips wait for the recorder: the start phase goes at once, the clip rides with the
incident's next phase (an `update`, or its `end` held back until the clip is cut).

One stage on its own: a scripted detector and a stand-in recorder whose video "arrives" with
the frames; the real recorder ring is tested in tests/test_packet_ring.py and with
`edge-agent run` in tests/test_live_clips.py.
"""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.app.config import load_config
from edge_agent.app.wiring import camera_pipeline
from edge_agent.core.config import RuleClipConfig
from edge_agent.core.types import Detections, Event
from edge_agent.delivery.jsonl import MemorySink
from edge_agent.pipeline.clip_schedule import GIVE_UP_S
from edge_agent.pipeline.clips import Clip, ClipSettings
from edge_agent.pipeline.detect.models import COCO80_LABELS
from edge_agent.pipeline.detect.scripted import ScriptedDetector, boxes
from edge_agent.sources.file import FileSource
from tests.conftest import FIXTURES

FPS = 5.0  # the walkway camera's detect.fps: call i is at i / 5 s


class Recorder:
    """Video up to `lag_s` behind the newest frame, as a recorder's ring has it."""

    live = True

    def __init__(self, now: Callable[[], float], lag_s: float = 0.5, dead_after_s: float = 1e9) -> None:
        self.now = now
        self.lag_s = lag_s
        self.dead_after_s = dead_after_s  # the camera's stream stops reaching the ring here
        self.cuts: list[list[tuple[float, float]]] = []
        self.cut_count = 0
        self.failed = 0

    def ready(self, end_s: float) -> bool:
        return min(self.now() - self.lag_s, self.dead_after_s) >= end_s

    def cut(self, parts: list[tuple[float, float]]) -> Clip | None:
        self.cuts.append(parts)
        self.cut_count += 1
        end = min(parts[-1][1], self.now() - self.lag_s, self.dead_after_s)
        return Clip(b"mp4:" + repr(parts).encode(), parts[0][0], end, end - parts[0][0])


def run(on_lawn: Callable[[float], bool], seconds: float, post_s: float = 10.0, dead_after_s: float = 1e9,
        rule_clip: dict[str, object] | None = None) -> tuple[list[Event], Recorder]:  # fmt: skip
    cfg = load_config(FIXTURES / "walkway.yaml")
    cam = cfg.cameras[0]
    if rule_clip is not None:  # as `clip:` under every rule of the config
        clip = RuleClipConfig.model_validate(rule_clip)
        cam = cam.model_copy(update={"rules": [r.model_copy(update={"clip": clip}) for r in cam.rules]})
    clock = {"t": 0.0}

    def script(i: int) -> Detections:
        t = i / FPS
        return boxes([(40, 420, 90, 520, 0.9, 0)]) if on_lawn(t) else Detections.empty()

    sink = MemorySink()
    pipeline = camera_pipeline(cfg, cam, ScriptedDetector(COCO80_LABELS, script), sink)
    recorder = Recorder(lambda: clock["t"], dead_after_s=dead_after_s)
    pipeline.clips = recorder
    pipeline.clip_settings = ClipSettings(pre_s=5.0, post_s=post_s, max_s=120.0)
    source = FileSource(str(FIXTURES / "walkway-a.mp4"), cam.id, 0.0)
    try:
        for frame in source:
            if frame.media_s > seconds:
                break
            clock["t"] = frame.media_s
            pipeline.process(frame)
    finally:
        source.close()
    pipeline.close()
    return sink.events, recorder


def phases(events: list[Event], rule: str) -> list[tuple[str, bool]]:
    return [(e.phase, e.clip is not None) for e in events if e.rule == rule]


def test_an_incident_over_before_post_s_sends_its_end_with_the_clip() -> None:
    events, recorder = run(lambda t: 1.0 <= t < 4.0, 15.0)
    assert phases(events, "on-lawn") == [("start", False), ("end", True)]
    start, end = [e for e in events if e.rule == "on-lawn"]
    assert end.media_s < start.media_s + 10.0  # the end keeps its own time, though it went out later
    assert recorder.cuts == [[(max(0.0, start.media_s - 5.0), start.media_s + 10.0)]]
    assert end.clip is not None and end.evidence is not None and end.evidence.clip is not None
    assert end.event_id == start.event_id and end.evidence.clip.startswith(b"mp4:")


def test_a_lasting_incident_gets_its_clip_in_an_update_then_ends_without_it() -> None:
    events, _ = run(lambda t: 1.0 <= t < 20.0, 30.0, post_s=4.0)
    got = phases(events, "on-lawn")
    assert got[0] == ("start", False) and ("update", True) in got and got[-1] == ("end", False)
    assert sum(clip for _, clip in got) == 1
    start = next(e for e in events if e.rule == "on-lawn")
    update = next(e for e in events if e.rule == "on-lawn" and e.clip is not None)
    assert update.event_id == start.event_id and update.media_s >= start.media_s + 4.0


def test_a_camera_whose_video_stops_sends_what_there_is_after_the_give_up_wait() -> None:
    events, _ = run(lambda t: 1.0 <= t < 3.0, 4.0 + GIVE_UP_S + 10.0, post_s=10.0, dead_after_s=6.0)
    assert phases(events, "on-lawn") == [("start", False), ("end", True)]
    end = [e for e in events if e.rule == "on-lawn"][-1]
    assert end.clip is not None and end.clip.end_media_s == 6.0


def test_a_rule_with_clips_off_sends_its_phases_at_once() -> None:
    events, recorder = run(lambda t: 1.0 <= t < 4.0, 15.0, rule_clip={"enabled": False})
    assert phases(events, "on-lawn") == [("start", False), ("end", False)]
    assert recorder.cuts == []
