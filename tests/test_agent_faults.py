"""The fault boundary of `edge-agent run`: one camera's pipeline fails, the other goes on.

The agent runs in this process (so the test can break one camera on purpose) against two
real RTSP servers and a real Mosquitto. Camera `bad` first gets a rule that raises, then,
after its restart, a frame the detector cannot take; camera `good` must keep analysing and
publishing, and `bad` must come back on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_agent.app.agent import Agent
from edge_agent.app.config import parse_config
from edge_agent.contract.schemas import validate
from edge_agent.core.types import Frame
from edge_agent.pipeline.rules.base import Observation, Scene
from edge_agent.pipeline.rules.presence import Presence
from edge_agent.sources.rtsp import RtspSource
from tests.broker import Mosquitto, Subscriber, dedup, mosquitto  # noqa: F401
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory, wait_until  # noqa: F401
from tests.test_agent_live import box_config, camera

RULE_FAILURES = 1  # the rule raises this many times, then the camera gets a bad frame


class Breakage:
    """What goes wrong on camera `bad`, in order: a rule bug, then one broken frame."""

    def __init__(self) -> None:
        self.rule_failures = 0
        self.bad_frames = 0
        self.lock = threading.Lock()

    def rule_fails(self) -> bool:
        with self.lock:
            if self.rule_failures < RULE_FAILURES:
                self.rule_failures += 1
                return True
            return False

    def frame_fails(self) -> bool:
        with self.lock:
            if self.rule_failures >= RULE_FAILURES and self.bad_frames == 0:
                self.bad_frames += 1
                return True
            return False


@pytest.fixture
def breakage(monkeypatch: pytest.MonkeyPatch) -> Breakage:
    broken = Breakage()
    update = Presence.update
    next_frame = RtspSource.next_frame

    def failing_update(self: Presence, scene: Scene) -> list[Observation]:
        if scene.frame.camera_id == "bad" and broken.rule_fails():
            raise RuntimeError("rule bug on purpose")
        return update(self, scene)

    def failing_next_frame(self: RtspSource, after_index: int = -1) -> Frame | None:
        frame = next_frame(self, after_index)
        if frame is not None and self.camera_id == "bad" and broken.frame_fails():
            # a grey 4x4 picture: no colour planes, so masking and detection cannot take it
            return Frame(
                frame.camera_id, frame.index, frame.media_s, frame.wall_ts, np.zeros((4, 4), np.uint8)
            )
        return frame

    monkeypatch.setattr(Presence, "update", failing_update)
    monkeypatch.setattr(RtspSource, "next_frame", failing_next_frame)
    return broken


@pytest.fixture
def running_agent(tmp_path: Path, model_ready: Path) -> Iterator[Callable[[Any], Agent]]:
    started: list[tuple[Agent, threading.Thread]] = []

    def start(cfg: Any) -> Agent:
        agent = Agent(cfg)
        thread = threading.Thread(target=agent.run, name="agent", daemon=True)
        thread.start()
        started.append((agent, thread))
        return agent

    try:
        yield start
    finally:
        for agent, thread in started:
            agent.request_stop()
            thread.join(15)


def calm(cam: dict[str, Any]) -> dict[str, Any]:
    """A camera whose reconnect after a restart never counts as an outage on a busy test machine:
    this test is about pipeline faults, so offline and stalled incidents must not mix in."""
    return cam | {"stall_s": 10, "offline_after_s": 30, "open_timeout_s": 10, "read_timeout_s": 10}


def agent_config(tmp_path: Path, broker: Mosquitto, cameras: list[dict[str, Any]]) -> Any:
    """A config of these cameras, publishing stats every second to `broker`."""
    return parse_config(yaml.safe_dump(box_config(tmp_path, broker.url, cameras, threads=1)))


def good_events(sub: Subscriber) -> list[dict[str, Any]]:
    return [e for e in dedup(sub.events()) if e["camera"] == "good" and e["rule"] == "people"]


def health_of(sub: Subscriber) -> list[dict[str, Any]]:
    return [e for e in dedup(sub.events()) if e["kind"] == "camera_health"]


def diagnosis(sub: Subscriber, agent: Agent) -> str:
    """What the box and the subscriber saw, for a failure message."""
    health = [
        (e["camera"], e["phase"], e["details"], e["event_id"][:8])
        for e in sub.events()
        if e["kind"] == "camera_health"
    ]
    return (
        f"camera_health as received: {health}; subscriber connects: {sub.connects}; "
        f"publisher: {agent.delivery.publisher and agent.delivery.publisher.counters()}"
    )


def stats_of(sub: Subscriber) -> dict[str, Any]:
    stats = [m.json() for m in sub.snapshot() if m.topic.endswith("/stats")]
    return stats[-1]["cameras"] if stats else {}


def test_one_failing_camera_does_not_stop_the_other(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    running_agent: Callable[[Any], Agent],
    breakage: Breakage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    good_cam, bad_cam = rtsp_server_factory(), rtsp_server_factory()
    cfg = agent_config(
        tmp_path, mosquitto, [calm(camera("good", good_cam.url)), calm(camera("bad", bad_cam.url))]
    )
    # a persistent session, as a platform keeps: a subscriber starved long enough on a busy
    # machine to miss its keepalive gets what was published meanwhile when it reconnects
    with Subscriber(mosquitto.port, ["eagleeye/#"], client_id="platform-faults") as sub:
        agent = running_agent(cfg)

        # the rule bug, then the bad frame: two faults, each restarts camera bad
        wait_until(lambda: stats_of(sub).get("bad", {}).get("pipeline_faults", 0) >= 2, 60, "two faults")
        analysed_good = stats_of(sub)["good"]["analysed_frames"]
        t_faults = time.monotonic()

        # camera good never stopped: it keeps analysing and publishing its incident
        wait_until(lambda: stats_of(sub)["good"]["analysed_frames"] > analysed_good + 5, 20, "good goes on")
        wait_until(lambda: good_events(sub), 60, "good publishes its incident")
        assert good_events(sub)[0]["phase"] == "start"

        # camera bad comes back after its backoff and analyses again; its problem incident ends
        wait_until(
            lambda: (
                stats_of(sub)["bad"]["analysed_frames"] > 3 and stats_of(sub)["bad"]["pipeline_restarts"] >= 2
            ),
            30,
            "bad restarted",
        )
        wait_until(
            lambda: any(e["phase"] == "end" and e["details"]["state"] == "running" for e in health_of(sub)),
            20,
            "the problem incident ends",
        )
        assert time.monotonic() - t_faults < 60
        health = health_of(sub)
        assert [(e["camera"], e["phase"], e["details"]["state"]) for e in health] == [
            ("bad", "start", "error"),
            ("bad", "end", "running"),
        ], diagnosis(sub, agent)
        assert "RuntimeError: rule bug on purpose" in health[0]["details"]["reason"]
        assert health[0]["media_s"] >= 0 and health[1]["duration_s"] > 0
        for e in dedup(sub.events()):
            assert not validate("event", e), e
        assert stats_of(sub)["good"]["pipeline_faults"] == 0
        agent.request_stop()

    # each fault is logged once, naming the camera, with the traceback
    faults = [r for r in caplog.records if "pipeline failed" in r.getMessage()]
    assert len(faults) == 2
    assert all("camera bad" in r.getMessage() and r.exc_info for r in faults)


def test_the_live_agent_runs_without_opencvs_pool_and_gives_the_setting_back(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Readers and detection workers are the agent's own threads: OpenCV's pool is off while
    it runs (app/opencv_threads.py), on the workers that analyse the frames too, and the
    caller's setting is back once `run` returns."""
    import cv2

    seen: list[int] = []
    update = Presence.update

    def looking(self: Presence, scene: Scene) -> list[Observation]:
        seen.append(cv2.getNumThreads())
        return update(self, scene)

    monkeypatch.setattr(Presence, "update", looking)
    server = rtsp_server_factory()
    cfg = agent_config(tmp_path, mosquitto, [calm(camera("cam", server.url))])
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        agent = Agent(cfg)
        thread = threading.Thread(target=agent.run, name="agent", daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(seen) >= 3, 60, "three analysed frames")
        finally:
            agent.request_stop()
            thread.join(15)
        assert not thread.is_alive()
        after = cv2.getNumThreads()
    finally:
        cv2.setNumThreads(before)
    assert set(seen) == {1}, f"OpenCV threads seen by the workers: {sorted(set(seen))}"
    assert after == 2
