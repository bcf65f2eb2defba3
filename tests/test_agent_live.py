"""`edge-agent run` against real RTSP servers and a real Mosquitto, killed and hung by the tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.contract.schemas import validate
from edge_agent.delivery.outbox import Outbox
from tests.broker import Mosquitto, Subscriber, dedup, mosquitto  # noqa: F401
from tests.conftest import REPO
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory, wait_until  # noqa: F401

PASSWORD = "s3cr3t-Pa55"
PATH_ZONE = [
    [0.0, 0.33],
    [0.5, 0.36],
    [0.85, 0.17],
    [1.0, 0.17],
    [1.0, 0.85],
    [0.55, 0.62],
    [0.3, 0.48],
    [0.0, 0.44],
]


def camera(cam_id: str, url: str) -> dict[str, Any]:
    return {
        "id": cam_id,
        "url": url,
        "detect": {"fps": 2},
        "stall_s": 2,
        "offline_after_s": 3,
        "open_timeout_s": 3,
        "read_timeout_s": 3,
        "zones": {"path": {"polygon": PATH_ZONE}},
        "rules": [{"id": "people", "kind": "presence", "zone": "path", "labels": ["person"]}],
    }


def box_config(state: Path, broker_url: str, cameras: list[dict[str, Any]], **model: Any) -> dict[str, Any]:
    """A test box's config: site `testsite`, device `edge-t`, stats every second to `broker_url`,
    its outbox and evidence under `state`; `model` adds to `{name: yolox-nano}`."""
    return {
        "version": 1,
        "site": {"id": "testsite"},
        "device": {"id": "edge-t"},
        "model": {"name": "yolox-nano", **model},
        "mqtt": {"url": broker_url, "stats_interval_s": 1},
        "outbox": {"path": str(state / "outbox.sqlite3")},
        "evidence": {"dir": str(state / "evidence")},
        "cameras": cameras,
    }


class AgentProcess:
    def __init__(self, tmp: Path, broker: Mosquitto, cameras: list[dict[str, Any]]) -> None:
        self.tmp = tmp
        self.config = tmp / "config.yaml"
        self.log_path = tmp / "agent.log"
        self.outbox = tmp / "outbox.sqlite3"
        self.write_config(broker, cameras)
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, broker: Mosquitto, cameras: list[dict[str, Any]]) -> None:
        cfg = box_config(self.tmp, broker.url, cameras, threads=1, workers=2)
        self.config.write_text(yaml.safe_dump(cfg))

    def start(self) -> AgentProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "--log-level", "INFO", "run", "--config", str(self.config)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> tuple[int, float]:
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout_s)
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def agent_factory(tmp_path: Path, model_ready: Path) -> Iterator[Callable[..., AgentProcess]]:
    made: list[AgentProcess] = []

    def make(broker: Mosquitto, cameras: list[dict[str, Any]]) -> AgentProcess:
        (tmp_path / f"agent{len(made)}").mkdir()
        agent = AgentProcess(tmp_path / f"agent{len(made)}", broker, cameras)
        made.append(agent)
        return agent.start()

    try:
        yield make
    finally:
        for agent in made:
            agent.kill()


def camera_states(sub: Subscriber, cam: str) -> list[str]:
    return [m.json()["state"] for m in sub.snapshot() if m.topic.endswith(f"/cameras/{cam}/status")]


def events_of(sub: Subscriber, cam: str, rule: str) -> list[dict[str, Any]]:
    return [e for e in dedup(sub.events()) if e["camera"] == cam and e["rule"] == rule]


def analysed(sub: Subscriber, cam: str) -> int:
    stats = [m.json() for m in sub.snapshot() if m.topic.endswith("/stats")]
    return int(stats[-1]["cameras"][cam]["analysed_frames"]) if stats else 0


def all_payload_text(sub: Subscriber) -> str:
    return "\n".join(
        m.payload.decode("utf-8", "replace") for m in sub.snapshot() if "/snapshots/" not in m.topic
    )


def test_two_live_cameras_survive_kill_and_hang(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    agent_factory: Callable[..., AgentProcess],
) -> None:
    cam1 = rtsp_server_factory(user="admin", password=PASSWORD)
    cam2 = rtsp_server_factory()
    with Subscriber(mosquitto.port, ["eagleeye/#"]) as sub:
        sub.start()
        agent = agent_factory(mosquitto, [camera("east", cam1.url_with()), camera("west", cam2.url)])

        # both cameras online; the incident in the served footage (people on the path) is published
        wait_until(
            lambda: events_of(sub, "east", "people") and events_of(sub, "west", "people"), 60, "events"
        )
        assert camera_states(sub, "east")[-1] == "online"
        assert camera_states(sub, "west")[-1] == "online"

        # camera east dies: offline within offline_after_s (3 s) plus a health check, west unaffected
        cam1.kill()
        t_kill = time.monotonic()
        wait_until(lambda: camera_states(sub, "east")[-1:] == ["offline"], 15, "east offline")
        assert time.monotonic() - t_kill <= 3 + 3
        # the status goes straight out, the health event through the outbox: it may land just after
        wait_until(
            lambda: any(e["kind"] == "camera_health" for e in dedup(sub.events())), 5, "east health event"
        )
        health = [e for e in dedup(sub.events()) if e["kind"] == "camera_health"]
        assert [(e["camera"], e["phase"]) for e in health] == [("east", "start")]
        assert camera_states(sub, "west")[-1] == "online"

        # back on the same port: online again, the health incident ends, frames are analysed again
        analysed_before = analysed(sub, "east")
        cam1.start()
        wait_until(lambda: camera_states(sub, "east")[-1:] == ["online"], 30, "east online again")
        wait_until(lambda: analysed(sub, "east") > analysed_before + 5, 15, "east analysing again")
        wait_until(
            lambda: any(e["phase"] == "end" for e in dedup(sub.events()) if e["kind"] == "camera_health"),
            10,
            "health end",
        )

        # camera west hangs (SIGSTOP): stalled within stall_s + read timeout, recovers on SIGCONT
        cam2.pause()
        t_hang = time.monotonic()
        wait_until(lambda: camera_states(sub, "west")[-1:] == ["stalled"], 15, "west stalled")
        assert time.monotonic() - t_hang <= 2 + 3 + 2
        cam2.resume()
        wait_until(lambda: camera_states(sub, "west")[-1:] == ["online"], 30, "west online again")

        # stats every second, schema-valid, with both cameras
        stats = [m.json() for m in sub.snapshot() if m.topic.endswith("/stats")]
        assert stats and not validate("stats", stats[-1])
        assert set(stats[-1]["cameras"]) == {"east", "west"}
        assert stats[-1]["cameras"]["east"]["reconnects"] >= 1
        # two workers sharing both cameras: each camera names the worker of its last frame
        workers = stats[-1]["workers"]
        assert len(workers) == 2 and sorted(c for w in workers for c in w["cameras"]) == ["east", "west"]
        for c in ("east", "west"):
            assert c in workers[stats[-1]["cameras"][c]["worker"]]["cameras"]

        # SIGTERM: exit 0 within 10 s, outbox flushed, offline status retained
        rc, took = agent.stop()
        assert rc == 0 and took <= 10
        with Outbox(agent.outbox) as box:
            assert box.depth() == 0
        device = [m.json()["state"] for m in sub.snapshot() if m.topic.endswith("edge-t/status")]
        assert device[-1] == "offline"
        for e in dedup(sub.events()):
            assert not validate("event", e), e

    # no password anywhere: log lines, events, statuses, stats
    assert PASSWORD not in agent.log()
    assert PASSWORD not in all_payload_text(sub)
    assert "admin:***@" in agent.log()


def test_bad_cameras_are_reported_and_the_good_one_keeps_working(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    agent_factory: Callable[..., AgentProcess],
) -> None:
    good = rtsp_server_factory()
    locked = rtsp_server_factory(user="admin", password=PASSWORD)
    closed_port = locked.port + 1 if locked.port < 65000 else locked.port - 1
    cams = [
        camera("good", good.url),
        camera("wrong-path", good.url.rsplit("/", 1)[0] + "/nosuch"),
        camera("wrong-password", locked.url_with("admin", "not-" + PASSWORD)),
        camera("no-host", f"rtsp://admin:{PASSWORD}@127.0.0.1:{closed_port}/cam"),
    ]
    with Subscriber(mosquitto.port, ["eagleeye/#"]) as sub:
        sub.start()
        agent = agent_factory(mosquitto, cams)
        wait_until(lambda: events_of(sub, "good", "people"), 60, "events from the good camera")
        for cam in ("wrong-path", "wrong-password", "no-host"):
            wait_until(lambda c=cam: camera_states(sub, c)[-1:] == ["offline"], 20, f"{cam} offline")
        log = agent.log()
        assert "404" in log and "wrong path" in log
        assert "401" in log and "wrong user or password" in log
        assert "connection refused" in log
        assert camera_states(sub, "good")[-1] == "online"
        # levels that mean what they say: back online is news, offline needs someone to look
        assert "INFO edge_agent.app.camera_runtime: camera good: online" in log
        assert "WARNING edge_agent.app.camera_runtime: camera no-host: offline" in log
        assert "WARNING edge_agent.app.camera_runtime: camera good: online" not in log

        # SIGHUP with a broken config: logged, the old config keeps running
        agent.config.write_text(agent.config.read_text().replace("kind: presence", "kind: presense"))
        n_before = len(sub.snapshot())
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in agent.log(), 10, "reload refused")
        n_refused = len(sub.snapshot())
        # stats (every second) and events still flow after the refusal: two more messages
        wait_until(lambda: len(sub.snapshot()) >= n_refused + 2, 10, "messages after the refusal")
        assert agent.proc.poll() is None
        assert len(sub.snapshot()) > n_before
        rc, _ = agent.stop()
        assert rc == 0
    assert PASSWORD not in agent.log()
    assert PASSWORD not in all_payload_text(sub)
    assert "Traceback" not in agent.log()


def test_run_refuses_a_config_without_mqtt(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"version": 1, "site": {"id": "s"}, "device": {"id": "d"}, "cameras": [camera("a", "rtsp://x/y")]}
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "mqtt: the daemon needs an mqtt section" in proc.stderr
