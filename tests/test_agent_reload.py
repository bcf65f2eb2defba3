"""SIGHUP with a valid config under detection workers: the new cameras are served."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from edge_agent.app.agent import Agent
from edge_agent.app.config import load_config
from tests.broker import Mosquitto, Subscriber, mosquitto  # noqa: F401
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory, wait_until  # noqa: F401
from tests.test_agent_faults import calm, stats_of
from tests.test_agent_live import box_config, camera


def config(tmp: Path, broker: Mosquitto, cameras: list[dict[str, Any]]) -> dict[str, Any]:
    return box_config(tmp, broker.url, cameras, workers=2)


def test_reload_serves_the_new_cameras_with_the_workers(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    model_ready: Path,
) -> None:
    server = rtsp_server_factory()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, mosquitto, [calm(camera("a", server.url))])))
    agent = Agent(load_config(path), str(path))
    thread = threading.Thread(target=agent.run, name="agent", daemon=True)
    with Subscriber(mosquitto.port, ["eagleeye/v1/testsite/edge-t/stats"]) as sub:
        sub.start()
        thread.start()
        try:
            wait_until(lambda: stats_of(sub).get("a", {}).get("analysed_frames", 0) > 3, 60, "a analysing")
            cams = [calm(camera(c, server.url)) for c in ("a", "b", "c")]
            path.write_text(yaml.safe_dump(config(tmp_path, mosquitto, cams)))
            agent.request_reload()

            def all_analysing() -> bool:
                stats = stats_of(sub)
                return set(stats) == {"a", "b", "c"} and all(s["analysed_frames"] > 3 for s in stats.values())

            wait_until(all_analysing, 60, "three cameras analysing after the reload")
            stats = stats_of(sub)
            assert all(s["worker"] in (0, 1) for s in stats.values())
            assert all(s["pipeline_faults"] == 0 for s in stats.values())
        finally:
            agent.request_stop()
            thread.join(15)
    assert not thread.is_alive()
