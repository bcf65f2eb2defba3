"""`edge-agent run` on a full disk: the daemon and its camera keep going, and recover when space returns.

The agent runs in this process against a real RTSP camera and a real Mosquitto,
its outbox and evidence on a real small tmpfs that another program has all but
filled. Before this was handled, the first event's put raised OutboxError out
of the detection loop and the daemon exited.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from edge_agent.app.agent import Agent
from edge_agent.app.config import parse_config
from tests.broker import Mosquitto, Subscriber, dedup, mosquitto  # noqa: F401
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory, wait_until  # noqa: F401
from tests.test_agent_live import box_config, camera
from tests.test_delivery_disk_full import small_disk


def _stats(sub: Subscriber) -> dict[str, Any]:
    stats = [m.json() for m in sub.snapshot() if m.topic.endswith("/stats")]
    return stats[-1] if stats else {}


def test_a_full_disk_does_not_stop_the_daemon_and_events_go_out_when_space_returns(
    tmp_path: Path,
    model_ready: Path,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
) -> None:
    cam = rtsp_server_factory()
    with small_disk(tmp_path / "disk", "16m") as disk:
        # Another program leaves 300 KB free: the outbox opens, but every put and every
        # picture is refused (both keep a reserve), so the camera's events must wait.
        filler = disk / "filler"
        with filler.open("wb") as f:
            os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(disk).free - 300 * 1024)
        raw = box_config(disk, mosquitto.url, [camera("cam", cam.url)], threads=1)
        raw["outbox"]["path"] = str(disk / "outbox" / "outbox.sqlite3")
        cfg = parse_config(yaml.safe_dump(raw))
        with Subscriber(mosquitto.port, ["eagleeye/#"]) as sub:
            agent = Agent(cfg)
            done: list[int] = []
            thread = threading.Thread(target=lambda: done.append(agent.run()), name="agent", daemon=True)
            thread.start()
            try:
                # The agent's part of the stats (evidence) is written on the status board once a
                # health tick, the delivery's (outbox) read when the message is sent: wait for both.
                wait_until(
                    lambda: (
                        _stats(sub).get("outbox", {}).get("held_in_memory", 0) > 0
                        and _stats(sub).get("evidence", {}).get("refused_low_space", 0) > 0
                    ),
                    90,
                    "a held event and a refused picture",
                )
                stats = _stats(sub)
                assert stats["outbox"]["write_errors"] > 0 and stats["outbox"]["last_write_error"]
                assert stats["cameras"]["cam"]["pipeline_faults"] == 0  # the camera was not blamed
                assert thread.is_alive() and not done
                assert not [e for e in sub.events() if e["rule"] == "people"]

                filler.unlink()  # space returns
                wait_until(lambda: any(e["rule"] == "people" for e in sub.events()), 30, "the held event")
                wait_until(
                    lambda: (
                        _stats(sub)["outbox"]["held_in_memory"] == 0
                        and _stats(sub)["outbox"]["last_write_error"] is None
                    ),
                    10,
                    "the memory queue emptied",
                )
                people = [e for e in dedup(sub.events()) if e["rule"] == "people"]
                assert people[0]["phase"] == "start"
                assert thread.is_alive()
            finally:
                agent.request_stop()
                thread.join(15)
        assert done == [0]
        assert not list(disk.rglob("*.tmp"))
