"""The example ACL (mqtt/mosquitto/acl) on a real Mosquitto: who may send and read commands."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.contract.topics import Topics
from tests.broker import Mosquitto, Subscriber, make_password_file, mosquitto_factory  # noqa: F401
from tests.conftest import REPO
from tests.rtsp import wait_until

USERS = {"edge-01": "pw-1", "edge-02": "pw-2", "platform": "pw-p"}
EDGE1 = Topics("eagleeye", "laohu", "edge-01")
EDGE2 = Topics("eagleeye", "laohu", "edge-02")


def publish_v5(port: int, user: str, topic: str, payload: bytes = b"{}") -> int:
    """One QoS 1 publish with MQTT 5; the PUBACK's reason code (0x87: not authorised)."""
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


def test_only_the_platform_sends_commands_and_each_box_reads_only_its_own(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
) -> None:
    passwd = make_password_file(tmp_path / "passwd", USERS)
    broker = mosquitto_factory(password_file=passwd, acl_file=REPO / "mqtt" / "mosquitto" / "acl").start()
    port = broker.port
    box1 = Subscriber(port, [EDGE1.commands_filter], username="edge-01", password=USERS["edge-01"])
    # edge-02 tries to read everything, edge-01's commands included
    box2 = Subscriber(port, ["eagleeye/#"], username="edge-02", password=USERS["edge-02"])
    town = Subscriber(port, [EDGE1.command_results_filter], username="platform", password=USERS["platform"])
    with box1, box2, town:
        assert publish_v5(port, "platform", EDGE1.command("ping"), b"for edge-01") == 0
        assert publish_v5(port, "platform", EDGE1.command("ping") + "/result", b"forged answer") == 0x87
        assert publish_v5(port, "edge-01", EDGE1.command("ping"), b"to itself") == 0x87
        assert publish_v5(port, "edge-01", EDGE2.command("ping"), b"to another box") == 0x87
        assert publish_v5(port, "edge-02", EDGE1.command("config-set"), b"to another box") == 0x87
        assert publish_v5(port, "edge-01", f"{EDGE1.base}/receipts", b"a receipt") == 0x87
        assert publish_v5(port, "edge-01", EDGE1.command_result("ping"), b"pong") == 0
        assert publish_v5(port, "edge-02", EDGE1.command_result("ping"), b"a false answer") == 0x87
        box1.wait_for(lambda m: len(m) >= 1, 5)
        town.wait_for(lambda m: len(m) >= 1, 5)
        time.sleep(0.5)  # anything refused would have arrived by now
        assert [m.payload for m in box1.snapshot()] == [b"for edge-01"]
        assert [m.payload for m in town.snapshot()] == [b"pong"]
        assert box2.snapshot() == []
