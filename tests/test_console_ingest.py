"""The console end to end: real Mosquitto, real publishers, `edge-agent console` as a process.

Boxes are the project's own delivery path (durable `Outbox` + `MqttPublisher`,
one per device id) or `edge-agent replay --publish` on the fixture clips. The
console is SIGKILLed under load and started again; the database must then hold
every event exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.console.db import Database
from edge_agent.console.tables import refused
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import Mosquitto, fake_jpeg, make_event, mosquitto  # noqa: F401
from tests.conftest import FIXTURES, REPO, clip_prefix
from tests.console_server import ConsoleProcess, event_rows, wait_rows
from tests.postgres import postgres_server, postgres_url  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path}/console.sqlite3"


class Box:
    """One simulated edge box: its own outbox and publisher, publishing numbered events."""

    def __init__(self, tmp: Path, url: str, device: str) -> None:
        self.device = device
        self.topics = Topics("eagleeye", "laohu", device)
        self.outbox = Outbox(tmp / f"{device}.sqlite3", 64)
        cfg = MqttConfig(url=url, keepalive_s=5, stats_interval_s=3600)
        self.publisher = MqttPublisher(cfg, self.outbox, self.topics, backoff=Backoff(0.2, 1.0))
        self.sink = OutboxSink(self.outbox, self.topics)
        self.sent: list[tuple[str, str, str]] = []

    def publish(self, count: int, rate_per_s: float) -> None:
        began = time.monotonic()
        for seq in range(count):
            snap = fake_jpeg(seq) if seq % 10 == 0 else None
            ev = make_event(seq, device=self.device, camera=f"cam-{seq % 2}", snapshot=snap)
            self.sink.emit(ev, snap)
            self.sent.append((ev.event_id, ev.phase, ev.ts))
            delay = began + (seq + 1) / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        self.publisher.stop(2)
        self.outbox.close()


@pytest.fixture
def boxes(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[list[Box]]:  # noqa: F811
    made = [Box(tmp_path, mosquitto.url, f"edge-{i:02d}") for i in range(10)]
    for b in made:
        b.publisher.start()
    yield made
    for b in made:
        b.close()


def test_console_killed_under_load_loses_nothing_and_duplicates_nothing(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    boxes: list[Box],
    database_url: str,
) -> None:
    console = ConsoleProcess(tmp_path / "console", mosquitto.url, database_url).start()
    try:
        per_box, rate = 80, 40.0  # 10 boxes x 80 events over 2 s, a snapshot with every tenth
        threads = [threading.Thread(target=b.publish, args=(per_box, rate)) for b in boxes]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while console.api("/api/status")["mqtt"]["events"] < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        console.kill()  # SIGKILL in the middle of the stream
        killed_with = len(event_rows(database_url))
        time.sleep(0.5)  # the boxes go on publishing into the broker's queue for the console
        console.start()
        for t in threads:
            t.join()
        for b in boxes:
            assert b.publisher.wait_drained(20) == 0, f"{b.device}: the broker did not take everything"
        expected = [key for b in boxes for key in b.sent]
        rows = wait_rows(database_url, len(expected), 30)
        assert 0 < killed_with < len(expected), "the kill should have happened mid-stream"
        assert len(rows) == len(expected), "every event exactly once"
        assert sorted(rows) == sorted(expected)
        status = console.api("/api/status")
        assert status["database"]["rows"]["incidents"] == len(expected)
        assert status["database"]["rows"]["snapshots"] == len(boxes) * per_box // 10
        assert "Traceback" not in console.log()
    finally:
        console.stop()


def test_resent_events_are_stored_once(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    database_url: str,
) -> None:
    console = ConsoleProcess(tmp_path / "console", mosquitto.url, database_url).start()
    try:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="resender")
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        events = [make_event(s, phase=p) for s in range(3) for p in ("start", "end")]
        for _ in range(3):  # every message three times, as a box whose PUBACKs got lost would
            for ev in events:
                topic = f"eagleeye/v1/laohu/edge-01/events/{ev.camera}/{ev.rule}"
                client.publish(topic, ev.to_json(), qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        deadline = time.monotonic() + 15
        while console.api("/api/status")["mqtt"]["committed"] < 18 and time.monotonic() < deadline:
            time.sleep(0.05)
        status = console.api("/api/status")
        assert status["mqtt"]["events"] == 6 and status["mqtt"]["duplicates"] == 12
        assert sorted(event_rows(database_url)) == sorted((e.event_id, e.phase, e.ts) for e in events)
        incidents = console.api("/api/incidents")["incidents"]
        assert sorted((i["event_id"], i["phases"], i["last_phase"]) for i in incidents) == [
            (f"edge-01-cam-a-{s:06d}", 2, "end") for s in range(3)
        ]
    finally:
        console.stop()


def test_a_5_mb_event_is_refused_counted_and_acknowledged(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    database_url: str,
) -> None:
    console = ConsoleProcess(tmp_path / "console", mosquitto.url, database_url).start()
    try:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="big-box", clean_session=False)
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        small, big = make_event(1), make_event(2).to_dict()
        big["details"] = {"junk": "x" * (5 * 1024 * 1024)}  # a 5 MB event, valid in every other way
        topic = "eagleeye/v1/laohu/edge-01/events/cam-a/dumping"
        for payload in (json.dumps(big), small.to_json()):
            client.publish(topic, payload, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        deadline = time.monotonic() + 15
        while console.api("/api/status")["mqtt"]["committed"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        status = console.api("/api/status")
        assert status["mqtt"]["refused"] == 1 and status["mqtt"]["events"] == 1
        assert status["mqtt"]["acked"] == 2  # refused, yet acknowledged: it never blocks the queue
        assert status["refused"] == {"laohu/edge-01": {"event": 1}}
        assert event_rows(database_url) == [(small.event_id, small.phase, small.ts)]
        db = Database(database_url)
        with db.connection() as conn:
            size = conn.execute(sa.select(refused.c.last_size)).scalar_one()
        db.close()
        assert size > 5 * 1024 * 1024
        assert "Traceback" not in console.log()
    finally:
        console.stop()


def test_two_instances_on_a_shared_subscription_split_the_load(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    boxes: list[Box],
    postgres_url: str,  # noqa: F811
) -> None:
    consoles = [
        ConsoleProcess(tmp_path / f"c{i}", mosquitto.url, postgres_url, client_id=f"town-{i}", group="town")
        for i in range(2)
    ]
    try:
        for c in consoles:
            c.start()
        threads = [threading.Thread(target=b.publish, args=(30, 100.0)) for b in boxes[:4]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = [key for b in boxes[:4] for key in b.sent]
        rows = wait_rows(postgres_url, len(expected), 30)
        assert sorted(rows) == sorted(expected)
        shares = [c.api("/api/status")["mqtt"]["events"] for c in consoles]
        assert sum(shares) == len(expected) and min(shares) > 0, shares
    finally:
        for c in consoles:
            c.stop()


def _replay(config: Path, clip: str, events: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "edge_agent", "replay", str(FIXTURES / clip), "--config", str(config),
           "--publish", "--events", str(events), "--quiet"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_replays_from_two_boxes_arrive_in_one_console(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    model_ready: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path}/console.sqlite3"
    console = ConsoleProcess(tmp_path / "console", mosquitto.url, database_url).start()
    try:
        procs, outputs = [], []
        # the first 15 s of each walkway clip: three incidents a box, each with its snapshot
        clips = [str(clip_prefix(tmp_path, clip, 15)) for clip in ("walkway-a.mp4", "walkway-b.mp4")]
        for device, clip in zip(("edge-01", "edge-02"), clips, strict=True):
            cfg = yaml.safe_load((FIXTURES / "walkway.yaml").read_text())
            cfg["device"] = {"id": device}
            cfg["mqtt"] = {"url": mosquitto.url}
            cfg["outbox"] = {"path": str(tmp_path / f"{device}-outbox.sqlite3")}
            path = tmp_path / f"{device}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            outputs.append(tmp_path / f"{device}.jsonl")
            procs.append(_replay(path, clip, outputs[-1]))
        for p in procs:
            _, err = p.communicate(timeout=240)
            assert p.returncode == 0, err
        produced = [json.loads(line) for out in outputs for line in out.read_text().splitlines()]
        assert {e["device"] for e in produced} == {"edge-01", "edge-02"}
        for device in ("edge-01", "edge-02"):
            assert sum(e["device"] == device and e["phase"] == "start" for e in produced) >= 3
        rows = wait_rows(database_url, len(produced), 30)
        assert sorted(rows) == sorted((e["event_id"], e["phase"], e["ts"]) for e in produced)
        starts = {e["event_id"] for e in produced if e["phase"] == "start"}
        for event_id in starts:
            inc = console.api(f"/api/incidents/{event_id}")
            assert inc["snapshot_info"]["sha256_ok"], event_id  # the JPEG stored is the one the event names
        board = console.api("/api/health")["devices"]
        assert [(d["device"], d["state"]) for d in board] == [("edge-01", "offline"), ("edge-02", "offline")]
    finally:
        console.stop()


def test_a_retired_instance_takes_its_queue_along_and_no_share_afterwards(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    boxes: list[Box],
    postgres_url: str,  # noqa: F811
) -> None:
    stays = ConsoleProcess(tmp_path / "a", mosquitto.url, postgres_url, client_id="town-a", group="town")
    leaves = ConsoleProcess(tmp_path / "b", mosquitto.url, postgres_url, client_id="town-b", group="town")
    try:
        stays.start()
        leaves.start()
        leaves.stop()  # down for a while: the broker queues its share
        boxes[0].publish(20, 200.0)
        retire = subprocess.run(
            [sys.executable, "-m", "edge_agent", "console", "--config", str(leaves.config), "--retire"],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert retire.returncode == 0, retire.stderr
        assert "session deleted" in retire.stderr
        boxes[1].publish(20, 200.0)  # after the retirement: all of it must go to the instance that stays
        expected = boxes[0].sent + boxes[1].sent
        rows = wait_rows(postgres_url, len(expected), 20)
        assert sorted(rows) == sorted(expected)
        assert stays.api("/api/status")["mqtt"]["events"] >= len(boxes[1].sent)
    finally:
        stays.stop()
        leaves.stop()
