"""Home Assistant MQTT discovery: the payloads against Home Assistant's documented keys, and the
state flow of a real replay through a real Mosquitto (overlapping incidents of one rule)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.app.config import parse_config as parse_text
from edge_agent.app.wiring import homeassistant_of, topics_of
from edge_agent.contract.schemas import load_schema
from edge_agent.core.config import ConfigError
from edge_agent.delivery.homeassistant import STATE_FILE, Discovery, HomeAssistantSink, announce
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import Message, Mosquitto, Subscriber, make_event, mosquitto  # noqa: F401
from tests.conftest import FIXTURES, REPO

# The configuration variables Home Assistant documents for MQTT discovery (home-assistant.io:
# integrations/mqtt "Discovery", binary_sensor.mqtt, sensor.mqtt, image.mqtt). Every key a
# payload carries must be one of these: Home Assistant refuses a config with an unknown key.
COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "default_entity_id", "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "platform", "qos", "unique_id",
}  # fmt: skip
COMPONENT_KEYS = {
    "binary_sensor": {
        "device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on",
        "state_topic", "value_template",
    },
    "sensor": {
        "device_class", "expire_after", "force_update", "last_reset_value_template", "options",
        "state_class", "state_topic", "suggested_display_precision", "unit_of_measurement", "value_template",
    },
    "image": {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
}  # fmt: skip
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
    "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
BINARY_SENSOR_CLASSES = {"motion", "occupancy", "problem", "presence", "safety", "moving"}
ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def config(tmp: Path, broker_url: str = "mqtt://127.0.0.1:1", **ha: Any) -> dict[str, Any]:
    cfg = yaml.safe_load((FIXTURES / "walkway.yaml").read_text())
    cam = cfg["cameras"][0]
    cam["url"] = str(FIXTURES / "walkway-b.mp4")
    # path-dwell: a dwell per person on the busy path, so several incidents of one rule are open
    # at once; lawn-dwell (from walkway.yaml) opens and closes twice; crossing-in is instant.
    cam["rules"] = [
        {"id": "path-dwell", "kind": "dwell", "zone": "path", "labels": ["person"], "min_dwell_s": 2},
        {"id": "lawn-dwell", "kind": "dwell", "zone": "lawn", "labels": ["person"], "min_dwell_s": 8},
        {"id": "crossing-in", "kind": "line_cross", "line": "mid", "labels": ["person"], "direction": "in"},
    ]
    cfg["mqtt"] = {"url": broker_url}
    cfg["outbox"] = {"path": str(tmp / "state" / "outbox.sqlite3")}
    cfg["homeassistant"] = {"discovery": True, **ha}
    return cfg


def parse_config(cfg: dict[str, Any]) -> Any:
    return parse_text(yaml.safe_dump(cfg))


def discovery_for(cfg: dict[str, Any]) -> Discovery:
    parsed = parse_config(cfg)
    setup = homeassistant_of(parsed)
    assert setup is not None
    return Discovery(topics_of(parsed), setup)


# --- the payloads -----------------------------------------------------------------


def test_discovery_payloads_use_only_documented_keys(tmp_path: Path) -> None:
    configs = discovery_for(config(tmp_path)).configs()
    assert configs
    for topic, payload in configs.items():
        prefix, component, node, object_id, last = topic.split("/")
        assert (prefix, last) == ("homeassistant", "config")
        assert set(node) <= ID_CHARS and set(object_id) <= ID_CHARS, topic
        unknown = set(payload) - COMMON_KEYS - COMPONENT_KEYS[component]
        assert not unknown, (topic, unknown)
        assert payload["unique_id"] and payload["name"]
        assert payload["default_entity_id"].startswith(component + ".")
        assert set(payload["device"]) <= DEVICE_KEYS and payload["device"]["identifiers"]
        assert set(payload["origin"]) <= ORIGIN_KEYS and payload["origin"]["name"] == "edge-agent"
        [avail] = payload["availability"]
        assert set(avail) <= AVAILABILITY_KEYS
        assert avail["topic"] == "eagleeye/v1/campus/edge-fixture/status"
        assert (avail["payload_available"], avail["payload_not_available"]) == ("online", "offline")
        assert avail["value_template"] == "{{ value_json.state }}"  # the status topic is JSON
    ids = [p["unique_id"] for p in configs.values()]
    assert len(ids) == len(set(ids))


def test_one_device_per_camera_with_its_entities(tmp_path: Path) -> None:
    configs = discovery_for(config(tmp_path)).configs()
    by_component: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in configs.items():
        by_component.setdefault(topic.split("/")[1], []).append(payload)
    sensors = {p["name"]: p for p in by_component["binary_sensor"]}
    assert set(sensors) == {"path-dwell", "lawn-dwell", "crossing-in"}
    path = sensors["path-dwell"]
    assert path["state_topic"] == "eagleeye/v1/campus/edge-fixture/rules/walkway/path-dwell/state"
    assert (path["payload_on"], path["payload_off"]) == ("ON", "OFF")
    assert path["device_class"] in BINARY_SENSOR_CLASSES and "off_delay" not in path
    assert sensors["crossing-in"]["off_delay"] > 0  # an instant rule pulses
    [status] = by_component["sensor"]
    assert status["state_topic"] == "eagleeye/v1/campus/edge-fixture/cameras/walkway/status"
    assert status["device_class"] == "enum" and status["options"] == ["online", "offline", "stalled"]
    [image] = by_component["image"]
    assert image["image_topic"] == "eagleeye/v1/campus/edge-fixture/cameras/walkway/snapshot"
    assert image["content_type"] == "image/jpeg" and image["name"] == "latest snapshot"
    devices = {json.dumps(p["device"], sort_keys=True) for p in configs.values()}
    assert len(devices) == 1  # the camera's entities share its device
    assert json.loads(devices.pop())["name"] == "Campus walkway walkway"


def test_a_count_rule_gets_a_count_sensor(tmp_path: Path) -> None:
    from edge_agent.contract.topics import Topics
    from edge_agent.delivery.homeassistant import HaRule, HaSetup

    topics = Topics("eagleeye", "laohu", "edge-01")
    setup = HaSetup("homeassistant", "", {"gate": [HaRule("gate", "bin-visits", "count")]})
    configs = Discovery(topics, setup).configs()
    [count] = [p for t, p in configs.items() if t.endswith("/gate_bin-visits/config")]
    assert count["state_topic"] == "eagleeye/v1/laohu/edge-01/counts/gate/bin-visits"
    assert count["value_template"] == "{{ value_json.count }}"
    # the member the template reads is one every count aggregate carries
    assert "count" in load_schema("count")["required"]
    assert count["json_attributes_topic"] == count["state_topic"]
    assert count["state_class"] == "measurement"
    assert set(count) - COMMON_KEYS - COMPONENT_KEYS["sensor"] == set()
    assert not [t for t in configs if t.startswith("homeassistant/binary_sensor/")]


def test_the_prefix_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"homeassistant\.prefix"):
        parse_config(config(tmp_path, prefix="home/#"))
    assert discovery_for(config(tmp_path, prefix="ha/disc")).configs()
    assert all(t.startswith("ha/disc/") for t in discovery_for(config(tmp_path, prefix="ha/disc")).configs())


def test_overlapping_incidents_keep_the_sensor_on(tmp_path: Path) -> None:
    parsed = parse_config(config(tmp_path))
    setup = homeassistant_of(parsed)
    assert setup is not None
    topics = topics_of(parsed)
    with Outbox(tmp_path / "outbox.sqlite3") as box:
        sink = HomeAssistantSink(OutboxSink(box, topics), topics, setup)

        def states() -> list[bytes]:
            return [i.payload for i in box.peek(1000) if i.topic.endswith("/path-dwell/state")]

        a = replace(make_event(1, camera="walkway", site="campus", device="edge-fixture"), rule="path-dwell")
        b = replace(a, event_id="second")
        sink.emit(a, b"\xff\xd8jpeg\xff\xd9")
        sink.emit(a, None)  # a re-sent start counts once
        sink.emit(b, None)
        assert sink.open_incidents("walkway", "path-dwell") == 2
        sink.emit(replace(a, phase="end"), None)
        assert states() == [b"ON"]  # b is still open
        sink.emit(replace(b, phase="update"), None)
        sink.emit(replace(b, phase="end"), None)
        assert states() == [b"ON", b"OFF"]
        snaps = [i for i in box.peek(1000) if i.topic.endswith("/cameras/walkway/snapshot")]
        assert [(s.payload, s.retain) for s in snaps] == [(b"\xff\xd8jpeg\xff\xd9", True)]

        # discovery switched off by a reload: events still go out, Home Assistant's topics not
        depth = box.depth()
        sink.reconfigure(None)
        sink.emit(replace(a, event_id="third"), b"\xff\xd8jpeg\xff\xd9")
        assert [i.topic for i in box.peek(1000)[depth:]] == [
            "eagleeye/v1/campus/edge-fixture/snapshots/third",
            "eagleeye/v1/campus/edge-fixture/events/walkway/path-dwell",
        ]


def test_a_changed_config_removes_what_went(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    parsed = parse_config(cfg)
    topics = topics_of(parsed)
    with Outbox(tmp_path / "outbox.sqlite3") as box:
        announce(box, topics, homeassistant_of(parsed), tmp_path)
        first = {i.topic: i for i in box.peek(1000)}
        assert all(i.retain for i in first.values())
        assert first["eagleeye/v1/campus/edge-fixture/rules/walkway/lawn-dwell/state"].payload == b"OFF"
        box.ack_many([i.id for i in first.values()])

        cfg["cameras"][0]["rules"] = [r for r in cfg["cameras"][0]["rules"] if r["id"] != "lawn-dwell"]
        announce(box, topics, homeassistant_of(parse_config(cfg)), tmp_path)
        second = box.peek(1000)
        emptied = {i.topic for i in second if i.payload == b""}
        assert emptied == {
            "homeassistant/binary_sensor/eagleeye_campus_edge-fixture/walkway_lawn-dwell/config",
            "eagleeye/v1/campus/edge-fixture/rules/walkway/lawn-dwell/state",
        }
        box.ack_many([i.id for i in second])

        # discovery switched off: everything it announced goes, and so does its memory
        announce(box, topics, None, tmp_path)
        third = box.peek(1000)
        assert third and all(i.payload == b"" and i.retain for i in third)
        assert {i.topic for i in third} >= {t for t in first if t.endswith("/config")} - emptied
        assert not (tmp_path / STATE_FILE).exists()


# --- the state flow through a real broker ------------------------------------------------------


def replay(cfg_path: Path, events: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "edge_agent", "replay", str(FIXTURES / "walkway-b.mp4"), "--config",
           str(cfg_path), "--publish", "--events", str(events), "--quiet"]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def retained(port: int, topics: list[str], settle_s: float = 1.5) -> dict[str, bytes]:
    """What a client connecting now gets: the retained message of each topic."""
    with Subscriber(port, topics) as late:
        late.start()
        time.sleep(settle_s)
        return {m.topic: m.payload for m in late.snapshot() if m.retain}


def test_state_flow_of_a_replay_through_mosquitto(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    model_ready: Path,
) -> None:
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config(tmp_path, mosquitto.url)))
    with Subscriber(mosquitto.port, ["eagleeye/#", "homeassistant/#"]) as sub:
        sub.start()
        proc = replay(cfg_path, tmp_path / "events.jsonl")
        assert proc.returncode == 0, proc.stderr
        produced = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        sub.wait_for(lambda msgs: sum("/events/" in m.topic for m in msgs) >= len(produced), 30)
        messages: list[Message] = sub.snapshot()

    # The platform's view, in arrival order: events and the rule's state share one ordered stream.
    for rule in ("path-dwell", "lawn-dwell"):
        state_topic = f"eagleeye/v1/campus/edge-fixture/rules/walkway/{rule}/state"
        open_ids: set[str] = set()
        most_open = 0
        shown: list[bytes] = []
        for m in messages:
            if m.topic.endswith(f"/events/walkway/{rule}"):
                ev = json.loads(m.payload)
                (open_ids.discard if ev["phase"] == "end" else open_ids.add)(ev["event_id"])
                most_open = max(most_open, len(open_ids))
            elif m.topic == state_topic:
                shown.append(m.payload)
                assert m.payload == (b"ON" if open_ids else b"OFF"), (rule, len(open_ids), m.payload)
        assert not open_ids and shown[0] == b"OFF" and shown[-1] == b"OFF", (rule, shown)
        assert b"ON" in shown
        if rule == "path-dwell":
            assert most_open >= 2  # incidents overlapped, and the sensor stayed ON through them
            # it went OFF only when no incident was open: never between two overlapping ones
            ends = sum(1 for e in produced if e["rule"] == rule and e["phase"] == "end")
            assert shown.count(b"OFF") - 1 < ends
        else:
            assert shown.count(b"ON") == 2  # lawn-dwell: two incidents one after the other

    crossings = [m for m in messages if m.topic.endswith("/rules/walkway/crossing-in/state")]
    assert crossings and all(m.payload == b"ON" for m in crossings)
    assert len(crossings) == sum(1 for e in produced if e["rule"] == "crossing-in")

    # What Home Assistant finds when it connects later: discovery, states, picture, availability.
    kept = retained(mosquitto.port, ["homeassistant/#", "eagleeye/#"])
    configs = {t: json.loads(p) for t, p in kept.items() if t.startswith("homeassistant/")}
    assert len(configs) == 5  # 3 rules, the camera status, the latest snapshot
    assert kept["eagleeye/v1/campus/edge-fixture/rules/walkway/path-dwell/state"] == b"OFF"
    assert "eagleeye/v1/campus/edge-fixture/rules/walkway/crossing-in/state" not in kept
    snapshot = kept["eagleeye/v1/campus/edge-fixture/cameras/walkway/snapshot"]
    last_start = [e for e in produced if e["phase"] == "start"][-1]
    assert hashlib.sha256(snapshot).hexdigest() == last_start["snapshot"]["sha256"]
    status = json.loads(kept["eagleeye/v1/campus/edge-fixture/status"])
    assert status["state"] == "offline"  # the replay ended with a clean stop
    assert kept["eagleeye/v1/campus/edge-fixture/available"] == b"offline"
