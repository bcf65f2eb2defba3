"""Remote operations end to end: a real `edge-agent run` on an RTSP camera, a real Mosquitto with
the repository's ACL and passwords, the platform's signed commands from `edge-agent command`
and `console/fleet.py`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.console.config import MqttConfig as ConsoleMqtt
from edge_agent.console.fleet import Target, send_command
from edge_agent.contract.commands import Command, generate_keys, load_private_key, new_command
from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from tests.broker import Message, Mosquitto, Subscriber, dedup, make_password_file, mosquitto_factory  # noqa: F401
from tests.conftest import REPO
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory, wait_until  # noqa: F401
from tests.test_agent_live import camera

MQTT_DIR = REPO / "mqtt"
USERS = {"edge-t": "pw-edge-t", "platform": "pw-platform"}
TOPICS = Topics("eagleeye", "testsite", "edge-t")
CONFIRM_S = 3


class Box:
    """One `edge-agent run` process with remote operations on, started and stopped by the test."""

    def __init__(self, tmp: Path, broker: Mosquitto, public_key: Path, cameras: list[dict[str, Any]]) -> None:
        self.tmp = tmp
        self.config = tmp / "config.yaml"
        self.log_path = tmp / "agent.log"
        (tmp / "edge-t.pass").write_text(USERS["edge-t"] + "\n")
        self.base: dict[str, Any] = {
            "version": 1,
            "site": {"id": "testsite"},
            "device": {"id": "edge-t"},
            "model": {"name": "yolox-nano", "threads": 1, "workers": 1},
            "mqtt": {
                "url": broker.url,
                "username": "edge-t",
                "password_file": str(tmp / "edge-t.pass"),
                "stats_interval_s": 1,
            },
            "outbox": {"path": str(tmp / "state" / "outbox.sqlite3")},
            "evidence": {"dir": str(tmp / "state" / "evidence")},
            "commands": {"public_key_file": str(public_key), "confirm_s": CONFIRM_S},
        }
        self.config.write_text(self.text(cameras))
        # models: the real one, and a manifest whose file in the cache is not what it says
        self.models = tmp / "models"
        self.models.mkdir()
        shutil.copy(REPO / "models" / "yolox-nano.yaml", self.models)
        os.link(REPO / "models" / "yolox_nano.onnx", self.models / "yolox_nano.onnx")
        manifest = yaml.safe_load((REPO / "models" / "yolox-nano.yaml").read_text())
        manifest |= {
            "name": "yolox-tampered",
            "file": "yolox_tampered.onnx",
            "url": "https://invalid.example/x",
        }
        (self.models / "yolox-tampered.yaml").write_text(yaml.safe_dump(manifest))
        self.cache = tmp / "cache"
        self.cache.mkdir()
        weights = bytearray((REPO / "models" / "yolox_nano.onnx").read_bytes())
        weights[len(weights) // 2] ^= 0xFF  # one flipped byte: loads and runs, detects nonsense
        (self.cache / "yolox_tampered.onnx").write_bytes(bytes(weights))
        # and one that is the same network under another name: an update that must succeed
        manifest |= {"name": "yolox-copy", "file": "yolox_copy.onnx"}
        (self.models / "yolox-copy.yaml").write_text(yaml.safe_dump(manifest))
        shutil.copy(REPO / "models" / "yolox_nano.onnx", self.cache / "yolox_copy.onnx")
        self.proc: subprocess.Popen[bytes] | None = None

    def text(self, cameras: list[dict[str, Any]]) -> str:
        return yaml.safe_dump({**self.base, "cameras": cameras})

    def start(self) -> Box:
        env = os.environ | {
            "EDGE_AGENT_MODEL_DIR": str(self.models),
            "EDGE_AGENT_MANIFEST_DIR": str(self.models),
            "EDGE_AGENT_MODEL_CACHE": str(self.cache),
        }
        with self.log_path.open("ab") as log:
            args = ["--log-level", "INFO", "run", "--config", str(self.config)]
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", *args],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def config_sha(self) -> str:
        return hashlib.sha256(self.config.read_bytes()).hexdigest()


@pytest.fixture
def town(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    model_ready: Path,
) -> Iterator[tuple[Mosquitto, Box, Path, RtspServer]]:
    passwd = make_password_file(tmp_path / "passwd", USERS)
    broker = mosquitto_factory(password_file=passwd, acl_file=MQTT_DIR / "mosquitto" / "acl").start()
    keys = tmp_path / "keys"
    keys.mkdir()
    generate_keys(keys / "town.key", keys / "town.pub")
    (tmp_path / "platform.pass").write_text(USERS["platform"] + "\n")
    console = tmp_path / "console.yaml"
    console.write_text(yaml.safe_dump({
        "version": 1,
        "mqtt": {"url": broker.url, "username": "platform", "password_file": str(tmp_path / "platform.pass")},
        "database": {"url": f"sqlite:///{tmp_path}/console.sqlite3"},
        "fleet": {"private_key_file": str(keys / "town.key"), "timeout_s": 20},
    }))  # fmt: skip
    server = rtsp_server_factory()
    (tmp_path / "box").mkdir()
    box = Box(tmp_path / "box", broker, keys / "town.pub", [camera("cam", server.url)])
    try:
        yield broker, box, console, server
    finally:
        box.kill()


def cli(console: Path, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    head = ["command", "--config", str(console), "--device", "testsite/edge-t"]
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *head, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def results(sub: Subscriber) -> dict[str, dict[str, Any]]:
    return {m.json()["id"]: m.json() for m in sub.snapshot() if m.topic.endswith("/result")}


def wait_result(sub: Subscriber, command_id: str, timeout_s: float) -> dict[str, Any]:
    wait_until(lambda: command_id in results(sub), timeout_s, f"result of {command_id}")
    result = results(sub)[command_id]
    assert not validate("command-result", result), result
    return result


def publish(port: int, user: str, payload: bytes, topic: str) -> int:
    """One QoS 1 publish with MQTT 5 as `user`; the PUBACK reason code (0x87: not authorised)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.username_pw_set(user, USERS[user])
    codes: list[int] = []
    client.on_publish = lambda c, u, mid, rc, props: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_until(lambda: codes, 5, "PUBACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def analysed(sub: Subscriber) -> int:
    stats = [m.json() for m in sub.snapshot() if m.topic.endswith("/stats")]
    return (
        int(stats[-1]["cameras"]["cam"]["analysed_frames"]) if stats and "cam" in stats[-1]["cameras"] else 0
    )


def rule_events_since(sub: Subscriber, rule: str, since: float) -> list[Message]:
    return [m for m in sub.snapshot() if f"/events/cam/{rule}" in m.topic and m.received_at > since]


def test_remote_operations_on_a_live_box(town: tuple[Mosquitto, Box, Path, RtspServer]) -> None:
    broker, box, console, _server = town
    key = load_private_key(Path(yaml.safe_load(console.read_text())["fleet"]["private_key_file"]))
    mqtt = ConsoleMqtt(url=broker.url, username="platform", password=USERS["platform"])
    target = Target("eagleeye", "testsite", "edge-t")
    watch = [TOPICS.command_results_filter, f"{TOPICS.base}/events/#", TOPICS.status, TOPICS.stats]
    with Subscriber(broker.port, watch, username="platform", password=USERS["platform"]) as sub:
        # first start: the box makes its persistent session, then stops
        box.start()
        wait_until(lambda: rule_events_since(sub, "people", 0), 90, "the first events")
        assert box.stop() == 0

        # the box is away: the CLI gives up with exit 3, the broker keeps the command
        t0 = time.monotonic()
        away = cli(console, "--timeout", "2", "ping")
        assert away.returncode == 3, away.stderr
        assert "no answer from testsite/edge-t within 2 s" in away.stderr
        assert time.monotonic() - t0 < 20
        box.start()
        wait_until(lambda: [r for r in results(sub).values() if r["action"] == "ping"], 60, "the queued ping")
        ping = next(r for r in results(sub).values() if r["action"] == "ping")
        assert ping["state"] == "applied" and ping["ok"] is True

        # ping from the shell: the inventory, exit 0
        done = cli(console, "ping")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("testsite/edge-t ping: applied: pong")
        inventory = json.loads(done.stdout.split("\n", 1)[1])
        assert inventory["config"]["sha256"] == box.config_sha()
        assert (
            inventory["model"]["sha256"]
            == hashlib.sha256((REPO / "models" / "yolox_nano.onnx").read_bytes()).hexdigest()
        )
        assert inventory["versions"]["edge-agent"] and inventory["disk"]["outbox_free_mb"] > 0
        wait_until(lambda: cli(console, "--json", "ping").stdout.count('"online"') == 1, 30, "camera online")

        # config-get: the file's text as it is (no password in this one) and its sha256
        got = cli(console, "config-get", "-o", str(box.tmp / "read.yaml"))
        assert got.returncode == 0, got.stderr
        assert got.stdout.startswith("testsite/edge-t config-get: applied: ")
        assert (box.tmp / "read.yaml").read_text() == box.config.read_text()
        assert json.loads(got.stdout.split("\n", 1)[1])["sha256"] == box.config_sha()

        # config-set adding a rule: applied after confirm_s, the new rule's events arrive
        cam = camera("cam", _server.url)
        cam["rules"] = [
            *cam["rules"],
            {"id": "walkers", "kind": "presence", "zone": "path", "labels": ["person"]},
        ]
        cam["masks"] = [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.3], [0.0, 0.3]]]  # a neighbour's window
        new_text = box.text([cam])
        (box.tmp / "new.yaml").write_text(new_text)
        t_set = time.time()
        applied = cli(console, "config-set", str(box.tmp / "new.yaml"))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "config-set: applied" in applied.stdout
        assert box.config.read_text() == new_text
        assert (box.tmp / "config.yaml.previous").is_file()
        wait_until(lambda: rule_events_since(sub, "walkers", t_set), 60, "events of the new rule")

        # snapshot: a fresh JPEG of the camera, masks blacked out, written by the CLI
        jpeg = box.tmp / "snap.jpg"
        snap = cli(console, "snapshot", "cam", "-o", str(jpeg))
        assert snap.returncode == 0, snap.stderr
        image = cv2.imdecode(np.frombuffer(jpeg.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[1] >= 320 and image.shape[0] >= 180
        # the privacy mask of the new config is filled black in what leaves the box
        h, w = image.shape[:2]
        assert image[int(h * 0.1) : int(h * 0.25), int(w * 0.1) : int(w * 0.25)].mean() < 10
        assert image[int(h * 0.6) :, int(w * 0.6) :].mean() > 30

        # what only the box itself may change: refused, nothing written
        before = box.config_sha()
        moved = yaml.safe_load(new_text)
        moved["mqtt"]["url"] = "mqtt://127.0.0.1:1"
        _, result = send_command(mqtt, key, target, "config-set", {"config": yaml.safe_dump(moved)})
        assert result is not None and result.state == "refused"
        assert result.message.startswith("mqtt cannot be changed remotely")
        renamed = yaml.safe_load(new_text) | {"device": {"id": "edge-x"}}
        _, result = send_command(mqtt, key, target, "config-set", {"config": yaml.safe_dump(renamed)})
        assert result is not None and result.message.startswith("device.id cannot be changed remotely")
        assert box.config_sha() == before

        # commands that must be refused, each leaving the config as it is
        broken = box.text([camera("cam", "rtsp://127.0.0.1:9/never")])
        signed = new_command("testsite", "edge-t", "config-set", {"config": broken}).signed_with(key)
        refused = []
        unsigned = new_command("testsite", "edge-t", "config-set", {"config": broken})
        other = new_command("testsite", "edge-t", "config-set", {"config": broken})
        forged = Command(**{**other.__dict__, "signature": signed.signature})  # another command's signature
        wrong_key = new_command("testsite", "edge-t", "config-set", {"config": broken}).signed_with(
            Ed25519PrivateKey.generate()
        )
        expired = new_command(
            "testsite", "edge-t", "config-set", {"config": broken}, ttl_s=60, now=time.time() - 120
        ).signed_with(key)
        for cmd in (unsigned, forged, wrong_key, expired):
            assert publish(broker.port, "platform", cmd.payload(), TOPICS.command("config-set")) == 0
            refused.append(wait_result(sub, cmd.id, 20))
        assert [r["state"] for r in refused] == ["refused"] * 4
        assert "unsigned" in refused[0]["message"]
        assert "bad signature" in refused[1]["message"] and "bad signature" in refused[2]["message"]
        assert "expired" in refused[3]["message"]
        assert box.config_sha() == before

        # a command published with the box's identity: the broker refuses it, the box never sees it
        own = new_command("testsite", "edge-t", "ping").signed_with(key)
        assert publish(broker.port, "edge-t", own.payload(), TOPICS.command("ping")) == 0x87
        # ... and the result topic the box may write is not a way in either
        ping_after = new_command("testsite", "edge-t", "ping").signed_with(key)
        assert publish(broker.port, "platform", ping_after.payload(), TOPICS.command("ping")) == 0
        wait_result(sub, ping_after.id, 20)  # later commands are answered: the box's one never was
        assert own.id not in results(sub)

        # config-set with a camera that never connects: rolled back within confirm_s + 10 s
        t0 = time.monotonic()
        cmd, result = send_command(
            mqtt, key, target, "config-set", {"config": broken}, timeout_s=CONFIRM_S + 30
        )
        took = time.monotonic() - t0
        assert result is not None and result.state == "rolled_back", result
        assert took <= CONFIRM_S + 10
        assert "not online" in result.message and "cam" in result.message
        assert box.config.read_text() == new_text
        t_back = time.time()
        wait_until(lambda: rule_events_since(sub, "people", t_back), 60, "the old rules publishing again")

        # the same signed command once more: a replay, refused
        assert publish(broker.port, "platform", cmd.payload(), TOPICS.command("config-set")) == 0

        def answers() -> list[dict[str, Any]]:
            return [
                m.json() for m in sub.snapshot() if m.topic.endswith("/result") and m.json()["id"] == cmd.id
            ]

        wait_until(lambda: len(answers()) >= 2, 20, "the replay's answer")
        replay = answers()[-1]
        assert replay["state"] == "refused" and "replayed" in replay["message"]
        assert box.config.read_text() == new_text

        # model-update to a file that fails its sha256: refused, the old model keeps detecting
        frames = analysed(sub)
        upd = cli(console, "model-update", "yolox-tampered")
        assert upd.returncode == 1, upd.stdout + upd.stderr
        assert "model-update: refused" in upd.stdout and "sha256 mismatch" in upd.stdout
        assert "the current model keeps running" in upd.stdout
        assert not (box.models / "yolox_tampered.onnx").exists()
        wait_until(lambda: analysed(sub) > frames + 5, 30, "the old model still analysing")
        after = json.loads(cli(console, "--json", "ping").stdout)["data"]
        assert after["model"] == inventory["model"]
        assert box.config.read_text() == new_text

        # model-update to a good model: fetched, loaded, running, written into the config
        done = cli(console, "model-update", "yolox-copy")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "model-update: applied: model yolox-copy running" in done.stdout
        assert yaml.safe_load(box.config.read_text())["model"]["name"] == "yolox-copy"
        after = json.loads(cli(console, "--json", "ping").stdout)["data"]
        assert after["model"]["file"].endswith("yolox_copy.onnx")
        frames = analysed(sub)
        wait_until(lambda: analysed(sub) > frames + 5, 30, "the new model analysing")

        # the agent killed in the middle of a config-set's trial: the next start restores the
        # previous file and answers rolled_back
        kept = box.config.read_text()
        trial = new_command(
            "testsite", "edge-t", "config-set", {"config": box.text([cam, camera("b", _server.url)])}
        )
        trial = trial.signed_with(key)
        assert publish(broker.port, "platform", trial.payload(), TOPICS.command("config-set")) == 0
        on_trial = box.tmp / "config.yaml.pending"
        wait_until(lambda: on_trial.exists() and box.config.read_text() != kept, 30, "the trial")
        box.kill()
        box.start()
        answer = wait_result(sub, trial.id, 60)
        assert (
            answer["state"] == "rolled_back" and "stopped before the confirmation ended" in answer["message"]
        )
        assert box.config.read_text() == kept and not (box.tmp / "config.yaml.pending").exists()

        assert box.stop() == 0
    log = box.log()
    assert USERS["edge-t"] not in log and "version: 1" not in log  # no password, no config text
    assert "refused: unsigned command" in log
    assert "(config-set): rolled_back" in log
    # every event on the way is still a valid event
    assert all(not validate("event", e) for e in dedup(sub.events()))
