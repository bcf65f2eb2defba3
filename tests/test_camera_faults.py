"""Camera faults stay in the camera: a real `run` (in this process) with a real RTSP camera and
a real Mosquitto next to a camera whose file is missing.

Before, the missing file raised SourceError at start (and on SIGHUP) and the good camera never
started; a password with `#`, `/`, `?` or `@` leaked through "Port could not be cast to integer"
and killed the camera for good.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from edge_agent.app.agent import Agent
from edge_agent.app.checks import check_file
from tests.broker import Mosquitto, Subscriber, dedup, mosquitto  # noqa: F401
from tests.conftest import REPO
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory, wait_until  # noqa: F401
from tests.test_agent_live import all_payload_text, box_config, camera, camera_states

PASSWORD = "S3cr#t@x/y?z"  # every character that used to break the URL


def write_config(
    path: Path, tmp: Path, broker: Mosquitto, cameras: list[dict[str, Any]], **site: Any
) -> None:
    cfg = box_config(tmp, broker.url, cameras, threads=1)
    cfg["site"].update(site)
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))


@pytest.fixture
def agent_in_thread(model_ready: Path) -> Iterator[Callable[[Path], Agent]]:
    started: list[tuple[Agent, threading.Thread]] = []

    def start(config: Path) -> Agent:
        checked = check_file(config, need_mqtt=True, camera_files=False)  # what `run` checks
        assert checked.cfg is not None, checked.problems
        agent = Agent(checked.cfg, str(config))
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


def stats_of(sub: Subscriber) -> dict[str, Any]:
    stats = [m.json() for m in sub.snapshot() if m.topic.endswith("/stats")]
    return stats[-1]["cameras"] if stats else {}


def test_a_missing_camera_stays_offline_alone_and_a_bad_reload_keeps_the_old_config(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    agent_in_thread: Callable[[Path], Agent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    server = rtsp_server_factory(user="admin", password=PASSWORD)
    good_url = server.url.replace("rtsp://", f"rtsp://admin:{quote(PASSWORD, safe='')}@", 1)
    missing = tmp_path / "later.mp4"
    config = tmp_path / "config.yaml"
    cameras = [camera("good", good_url), camera("gone", str(missing))]
    write_config(config, tmp_path, mosquitto, cameras)

    with Subscriber(mosquitto.port, ["eagleeye/#"]) as sub:
        sub.start()
        agent = agent_in_thread(config)

        # the good camera (its password percent-encoded) publishes; the missing one is offline
        wait_until(lambda: any(e["camera"] == "good" for e in dedup(sub.events())), 90, "good publishes")
        wait_until(lambda: "offline" in camera_states(sub, "gone"), 30, "gone is offline")
        gone = stats_of(sub)["gone"]
        assert "no such file" in (gone.get("last_error") or ""), gone

        # a reload that fails any check keeps the old config: a time zone that does not exist,
        # then a camera password with a raw '#'
        runtimes = list(agent.cameras)
        write_config(config, tmp_path, mosquitto, cameras, timezone="UTC+8")
        agent.request_reload()
        wait_until(lambda: "site.timezone" in caplog.text, 20, "reload refused")
        raw = [camera("good", server.url_with(password="S3cr#t")), cameras[1]]
        write_config(config, tmp_path, mosquitto, raw)
        agent.request_reload()
        wait_until(lambda: "cameras[0].url" in caplog.text, 20, "second reload refused")
        assert agent.cameras == runtimes
        analysed = stats_of(sub)["good"]["analysed_frames"]
        wait_until(lambda: stats_of(sub)["good"]["analysed_frames"] > analysed + 3, 30, "good goes on")

        # the file appears: the camera is retried with backoff and comes online on its own
        shutil.copyfile(REPO / "fixtures" / "walkway-a.mp4", missing)
        wait_until(lambda: "online" in camera_states(sub, "gone"), 90, "gone comes back")
        outage = [e for e in dedup(sub.events()) if e["camera"] == "gone" and e["kind"] == "camera_health"]
        assert outage and "no such file" in outage[0]["details"]["reason"]
        text = all_payload_text(sub)
        agent.request_stop()

    for secret in ("S3cr", "x/y", quote(PASSWORD, safe="")):
        assert secret not in text
        assert secret not in caplog.text
    assert "Traceback" not in caplog.text


def test_run_starts_with_a_missing_camera_and_a_sighup_with_a_bad_config_keeps_running(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    model_ready: Path,
) -> None:
    """The command itself: `edge-agent run` used to die at start with a SourceError traceback."""
    config = tmp_path / "config.yaml"
    cameras = [camera("gone", str(tmp_path / "nope.mp4"))]
    write_config(config, tmp_path, mosquitto, cameras)
    log = tmp_path / "run.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "camera gone: offline" in log.read_text(), 60, "the camera is offline")
        assert proc.poll() is None
        write_config(config, tmp_path, mosquitto, cameras, timezone="Asia/Shang hai")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in log.read_text(), 30, "the reload is refused")
        time.sleep(1)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert "site.timezone: unknown time zone" in text and "did you mean 'Asia/Shanghai'" in text
    assert "Traceback" not in text
