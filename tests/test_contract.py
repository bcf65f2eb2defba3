"""The platform contract in mqtt/: schemas, AsyncAPI, example broker configs, and `listen`.

Every payload the agent publishes is checked against its schema here; the
example Mosquitto config and ACL are run, not just read.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.contract.schemas import SCHEMA_NAMES, load_schema, schema_dir, validate
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig, TlsConfig
from edge_agent.core.types import Event, EventObject, SnapshotRef
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import (
    Message,
    Mosquitto,
    Subscriber,
    fake_jpeg,
    make_certificates,
    make_event,
    make_password_file,
    mosquitto,  # noqa: F401  (fixture)
    mosquitto_factory,  # noqa: F401  (fixture)
)

ROOT = Path(__file__).resolve().parents[1]
MQTT_DIR = ROOT / "mqtt"
TOPICS = Topics("eagleeye", "laohu", "edge-01")
KINDS = ["presence", "dwell", "crowd", "line_cross", "left_object", "vendor", "camera_health"]


def _event(**changes: Any) -> Event:
    base: dict[str, Any] = {
        "event_id": "edge-01-9f1c2a7b",
        "phase": "start",
        "site": "laohu",
        "device": "edge-01",
        "camera": "bridge-east",
        "rule": "dumping",
        "kind": "left_object",
        "severity": "alert",
        "zone": "dump-corner",
        "label": "suitcase",
        "score": 0.71,
        "objects": (EventObject(17, "suitcase", 0.7137, (0.12, 0.61, 0.19, 0.74)),),
        "started_at": "2026-11-26T08:15:02.400Z",
        "ts": "2026-11-26T08:15:32.400Z",
        "media_s": 32.4,
        "duration_s": 30.0,
        "snapshot": SnapshotRef("eagleeye/v1/laohu/edge-01/snapshots/edge-01-9f1c2a7b", "ab" * 32, 1280, 720),
    }
    base.update(changes)
    return Event(**base)


# --- schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schemas_are_valid_2020_12(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema_dir() == MQTT_DIR


def test_event_schema_matches_event_to_dict() -> None:
    schema = load_schema("event")
    produced = _event().to_dict()
    # every field Event writes is required (alarm_type apart: earlier boxes' events stay valid)...
    assert set(schema["required"]) == set(produced) - {"alarm_type"}
    # ...and nothing else but details and what only some events carry (left_object's owner, a clip)
    assert set(schema["properties"]) == set(produced) | {"details", "owner", "clip"}
    assert schema["additionalProperties"] is False
    assert schema["properties"]["kind"]["enum"] == KINDS


@pytest.mark.parametrize(
    "event",
    [
        _event(),
        _event(phase="update", details={"count": 7, "direction": "in"}),
        _event(phase="end", snapshot=None, zone=None, label=None, score=None, objects=()),
        _event(severity="info", ts="2026-11-26T08:15:32Z", started_at="2026-11-26T08:15:32.123456Z"),
        *[_event(kind=k) for k in KINDS],
        _event(
            objects=(EventObject(1, "person", 1.0, (0.0, 0.0, 1.0, 1.0)),) * 3, media_s=0.0, duration_s=0.0
        ),
    ],
)
def test_events_from_the_code_are_schema_valid(event: Event) -> None:
    assert validate("event", event.to_dict()) == []
    assert validate("event", json.loads(event.to_json())) == []


def _break(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = d
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        if value is KeyError:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return apply


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (_break("event_id", KeyError), "(top level)"),
        (_break("colour", "red"), "(top level)"),
        (_break("schema", "eagleeye.event/2"), "schema"),
        (_break("phase", "begin"), "phase"),
        (_break("kind", "loitering"), "kind"),
        (_break("severity", "critical"), "severity"),
        (_break("objects.0.bbox", [0.1, 0.2, 0.3]), "objects[0].bbox"),
        (_break("objects.0.bbox.2", 1.5), "objects[0].bbox[2]"),
        (_break("objects.0.track_id", "17"), "objects[0].track_id"),
        (_break("objects.0.extra", 1), "objects[0]"),
        (_break("ts", "2026-11-26T16:15:32.400+08:00"), "ts"),
        (_break("started_at", "yesterday"), "started_at"),
        (_break("snapshot.sha256", "xyz"), "snapshot"),
        (_break("camera", "a/b"), "camera"),
        (_break("media_s", -1), "media_s"),
        (_break("details", [1, 2]), "details"),
    ],
)
def test_broken_events_are_rejected(mutate: Callable[[dict[str, Any]], None], where: str) -> None:
    payload = copy.deepcopy(_event().to_dict())
    mutate(payload)
    errors = validate("event", payload)
    assert errors and errors[0].startswith(where)


def test_validate_rejects_unknown_schema_names() -> None:
    with pytest.raises(ValueError, match="unknown schema"):
        validate("alarm", {})


# --- every payload the agent publishes ------------------------------------------------------


SCHEMA_FOR = [
    (re.compile(r"^eagleeye/v1/[^/]+/[^/]+/events/[^/]+/[^/]+$"), "event"),
    (re.compile(r"^eagleeye/v1/[^/]+/[^/]+/status$"), "status"),
    (re.compile(r"^eagleeye/v1/[^/]+/[^/]+/cameras/[^/]+/status$"), "camera-status"),
    (re.compile(r"^eagleeye/v1/[^/]+/[^/]+/stats$"), "stats"),
    (re.compile(r"^eagleeye/v1/[^/]+/[^/]+/counts/[^/]+/[^/]+$"), "count"),
    (re.compile(r"^eagleeye/v1/[^/]+/[^/]+/snapshots/[^/]+$"), "jpeg"),
    (re.compile(r"^eagleeye/v1/[^/]+/[^/]+/available$"), "available"),
]


def _schema_of(topic: str) -> str:
    for pattern, name in SCHEMA_FOR:
        if pattern.match(topic):
            return name
    raise AssertionError(f"a topic outside the contract: {topic}")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_every_published_payload_is_schema_valid(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    protocol: str,
) -> None:
    def provider() -> dict[str, Any]:
        return {
            "cameras": {"bridge-east": {"fps": 4.8, "skipped_frames": 2, "reconnects": 1}},
            "detector_ms": 21.5,
        }

    outbox = Outbox(tmp_path / "outbox.sqlite3", 8)
    cfg = MqttConfig(url=mosquitto.url, stats_interval_s=0.2, protocol=protocol)
    pub = MqttPublisher(cfg, outbox, TOPICS, backoff=Backoff(0.2, 1.0))
    pub.board.put_stats(provider())
    sink = OutboxSink(outbox, TOPICS)
    with Subscriber(mosquitto.port, ["eagleeye/#"], protocol=protocol) as sub:
        pub.start()
        cam_topic = TOPICS.camera_status("bridge-east")
        for n, state in enumerate(("online", "stalled", "offline"), start=1):
            pub.board.set_camera_status("bridge-east", state)  # only the latest is sent: wait for each
            sub.wait_for(lambda m: sum(x.topic == cam_topic for x in m) >= n, 5)  # noqa: B023
        for seq, severity in enumerate(["info", "warning", "alert"]):
            snap = fake_jpeg(seq)
            sink.emit(make_event(seq, severity=severity, snapshot=snap), snap)
            sink.emit(make_event(seq, severity=severity, phase="end"), None)
        assert pub.wait_drained(10) == 0
        sub.wait_for(lambda m: sum(x.topic == TOPICS.stats for x in m) >= 2, 5)
        pub.stop(5)
        msgs: list[Message] = sub.wait_for(lambda m: m[-1].topic == TOPICS.status, 5)
        outbox.close()
    seen: dict[str, int] = {}
    for msg in msgs:
        name = _schema_of(msg.topic)
        seen[name] = seen.get(name, 0) + 1
        if name == "jpeg":
            assert msg.payload.startswith(b"\xff\xd8") and msg.payload.endswith(b"\xff\xd9")
            continue
        if name == "available":
            assert msg.payload in (b"online", b"offline") and msg.retain is False  # live, not replayed
            continue
        payload = msg.json()
        assert validate(name, payload) == [], f"{msg.topic}: {payload}"
    assert seen == {
        "status": 2, "available": 2, "camera-status": 3, "jpeg": 3, "event": 6, "stats": seen["stats"]
    }  # fmt: skip
    plain = [m.payload for m in msgs if m.topic == TOPICS.available]
    assert plain == [b"online", b"offline"]
    assert seen["stats"] >= 2


# --- AsyncAPI -------------------------------------------------------------------------------


EXPECTED_CHANNELS = {
    TOPICS.event("{camera}", "{rule}"): (1, False, "event"),
    TOPICS.snapshot("{event_id}"): (1, False, "snapshot"),
    TOPICS.owner_crop("{event_id}"): (1, False, "ownerCrop"),
    TOPICS.clip("{event_id}", "{index}"): (1, False, "clipChunk"),
    TOPICS.status: (1, True, "status"),
    TOPICS.camera_status("{camera}"): (1, True, "cameraStatus"),
    TOPICS.stats: (0, False, "stats"),
    TOPICS.counts("{camera}", "{rule}"): (1, True, "count"),
    TOPICS.available: (1, True, "availability"),
    TOPICS.command("{action}"): (1, False, "command"),
    TOPICS.command_result("{action}"): (1, False, "commandResult"),
    TOPICS.rule_state("{camera}", "{rule}"): (1, True, "ruleState"),
    TOPICS.latest_snapshot("{camera}"): (1, True, "latestSnapshot"),
    "{discovery_prefix}/{component}/{node_id}/{object_id}/config": (1, True, "discoveryConfig"),
    TOPICS.receipts: (1, False, "receipt"),  # from the platform: `publish` operations
    TOPICS.platform_status: (1, True, "platformStatus"),
}


def test_asyncapi_describes_every_topic() -> None:
    doc = yaml.safe_load((MQTT_DIR / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("2.6")

    def concrete(name: str) -> str:
        return name.replace("{prefix}", "eagleeye").replace("{site}", "laohu").replace("{device}", "edge-01")

    assert {concrete(name) for name in doc["channels"]} == set(EXPECTED_CHANNELS)
    messages = doc["components"]["messages"]
    for name, spec in doc["channels"].items():
        qos, retain, message = EXPECTED_CHANNELS[concrete(name)]
        # `publish`: what the box receives (receipts, the platform's status, commands);
        # `subscribe`: what it publishes
        received = ("receipt", "platformStatus", "command")
        operation = spec["publish" if message in received else "subscribe"]
        binding = operation["bindings"]["mqtt"]
        assert (binding["qos"], binding["retain"]) == (qos, retain), name
        assert operation["message"]["$ref"] == f"#/components/messages/{message}"
        assert set(re.findall(r"{(\w+)}", name)) == set(spec["parameters"]), name
        payload = messages[message]["payload"]
        if "$ref" in payload:
            schema_file = MQTT_DIR / payload["$ref"]
            assert schema_file.exists(), payload["$ref"]
            schema_name = schema_file.name.removesuffix(".schema.json")
            for example in messages[message].get("examples", []):
                assert validate(schema_name, example["payload"]) == [], example
    will = doc["servers"]["platform"]["bindings"]["mqtt"]["lastWill"]
    assert (will["qos"], will["retain"]) == (1, True)


DEDUP_KEY = "(event_id, phase, ts)"


@pytest.mark.parametrize(
    "document", ["mqtt/event.schema.json", "mqtt/README.md", "mqtt/asyncapi.yaml", "docs/rules.md"]
)
def test_every_document_gives_the_same_dedup_key(document: str) -> None:
    text = " ".join((ROOT / document).read_text(encoding="utf-8").split())
    keys = re.findall(r"[Dd]eduplicat\w* (?:re-sent messages |events )?on `?(\([a-z_, ]+\))", text)
    assert keys, f"{document} does not say what to deduplicate on"
    assert set(keys) == {DEDUP_KEY}, f"{document}: {keys}"


# --- the example broker configuration ------------------------------------------------------


def _publish_v5(port: int, user: str, password: str, topic: str) -> int:
    """Publish one QoS 1 message with MQTT 5; returns the PUBACK reason code."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.username_pw_set(user, password)
    codes: list[int] = []
    client.on_publish = lambda c, u, mid, rc, props: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, b"{}", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not codes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_example_acl_confines_each_device_to_its_subtree(
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    tmp_path: Path,
) -> None:
    users = {"edge-01": "pw-edge-01", "edge-02": "pw-edge-02", "platform": "pw-platform"}
    passwd = make_password_file(tmp_path / "passwd", users)
    broker = mosquitto_factory(password_file=passwd, acl_file=MQTT_DIR / "mosquitto" / "acl").start()
    with Subscriber(broker.port, ["eagleeye/#"], username="platform", password=users["platform"]) as sub:
        # The agent itself: its status (and Last Will), events and stats all pass the ACL.
        secret = tmp_path / "edge-01.pass"
        secret.write_text(users["edge-01"] + "\n")
        with Outbox(tmp_path / "outbox.sqlite3", 1) as ob:
            cfg = MqttConfig(url=broker.url, username="edge-01", password_file=str(secret), protocol="5")
            pub = MqttPublisher(cfg, ob, TOPICS, backoff=Backoff(0.2, 1.0))
            OutboxSink(ob, TOPICS).emit(make_event(1), None)
            ob.put("eagleeye/v1/laohu/edge-02/events/cam-a/dumping", b"{}")  # not its subtree
            pub.start()
            try:
                assert pub.wait_drained(10) == 0
                assert pub.counters()["rejected"] == 1  # MQTT 5: refused with a reason, removed
            finally:
                pub.stop(5)
        own = TOPICS.event("cam-a", "dumping")
        assert _publish_v5(broker.port, "edge-02", users["edge-02"], own) == 0x87  # not authorised
        assert _publish_v5(broker.port, "platform", users["platform"], own) == 0x87  # platform only reads
        # ... and writes receipts and its own status; no box writes another's receipts.
        assert _publish_v5(broker.port, "platform", users["platform"], TOPICS.receipts) == 0
        assert _publish_v5(broker.port, "platform", users["platform"], TOPICS.platform_status) == 0
        assert _publish_v5(broker.port, "edge-02", users["edge-02"], TOPICS.receipts) == 0x87
        assert _publish_v5(broker.port, "edge-02", users["edge-02"], TOPICS.platform_status) == 0x87
        assert _publish_v5(broker.port, "edge-02", users["edge-02"], "eagleeye/v1/laohu/edge-02/stats") == 0
        msgs = sub.wait_for(lambda m: any(x.topic.endswith("edge-02/stats") for x in m), 5)
    topics = [m.topic for m in msgs]
    assert topics.count(own) == 1 and TOPICS.status in topics
    assert "eagleeye/v1/laohu/edge-02/events/cam-a/dumping" not in topics


def test_example_tls_config_runs(tmp_path: Path) -> None:
    pki = make_certificates(tmp_path / "pki")
    passwd = make_password_file(tmp_path / "passwd", {"edge-01": "pw-edge-01", "platform": "pw-platform"})
    text = (MQTT_DIR / "mosquitto" / "mosquitto-tls.conf").read_text()
    broker = Mosquitto(tmp_path / "broker", tls=pki)
    replacements = {
        "listener 8883": f"listener {broker.port} 127.0.0.1",
        "/etc/mosquitto/certs/ca.crt": str(pki.ca),
        "/etc/mosquitto/certs/server.crt": str(pki.server_cert),
        "/etc/mosquitto/certs/server.key": str(pki.server_key),
        "/etc/mosquitto/passwd": str(passwd),
        "/etc/mosquitto/acl": str(MQTT_DIR / "mosquitto" / "acl"),
        "/var/lib/mosquitto/": f"{tmp_path / 'broker'}/",
        "log_dest syslog": f"log_dest file {broker.log_path}",
        "require_certificate false": "require_certificate true",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    if os.geteuid() == 0:
        text += "user root\n"
    broker.conf_path.write_text(text)
    broker.start()
    try:
        secret = tmp_path / "edge-01.pass"
        secret.write_text("pw-edge-01\n")
        tls = TlsConfig(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
        cfg = MqttConfig(url=broker.url, username="edge-01", password_file=str(secret), tls=tls)
        with Outbox(tmp_path / "outbox.sqlite3", 1) as ob:
            OutboxSink(ob, TOPICS).emit(make_event(1), None)
            pub = MqttPublisher(cfg, ob, TOPICS, backoff=Backoff(0.2, 1.0))
            pub.start()
            try:
                assert pub.wait_drained(10) == 0
            finally:
                pub.stop(5)
    finally:
        broker.kill()


# --- the reference subscriber -------------------------------------------------------------------


def _listen(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.tools.listen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "connected to" in line, line
    return proc


def _raw_publish(port: int, items: list[tuple[str, bytes]]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload in items:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def update_at(clock: str) -> Event:
    return dataclasses.replace(make_event(1, phase="update"), ts=f"2026-11-26T{clock}.000Z")


def test_listen_validates_dedups_and_saves_snapshots(mosquitto: Mosquitto, tmp_path: Path) -> None:  # noqa: F811
    snaps = tmp_path / "snaps"
    proc = _listen("--url", mosquitto.url, "--snapshots", str(snaps), "--count", "5", "--timeout", "20")
    jpeg = fake_jpeg(1)
    first = make_event(1, snapshot=jpeg)
    bad = make_event(9).to_dict() | {"phase": "begin"}
    items = [
        (TOPICS.status, json.dumps({"state": "online", "since": "2026-11-26T08:00:00.000Z"}).encode()),
        (first.snapshot.topic if first.snapshot else "", jpeg),
        (TOPICS.event("cam-a", "dumping"), first.to_json().encode()),
        (TOPICS.event("cam-a", "dumping"), first.to_json().encode()),  # a re-send
        (TOPICS.event("cam-a", "dumping"), json.dumps(bad).encode()),
        (TOPICS.event("cam-a", "dumping"), b"not json"),
        # two updates of one incident share its event_id and phase: both are news
        (TOPICS.event("cam-a", "dumping"), update_at("08:16:01").to_json().encode()),
        (TOPICS.event("cam-a", "dumping"), update_at("08:17:01").to_json().encode()),
        (TOPICS.event("cam-a", "dumping"), update_at("08:17:01").to_json().encode()),  # a re-send
        (TOPICS.event("cam-a", "dumping"), make_event(1, phase="end").to_json().encode()),
        (TOPICS.event("cam-b", "dumping"), make_event(2, camera="cam-b").to_json().encode()),
    ]
    _raw_publish(mosquitto.port, items)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("laohu/edge-01 status online")
    expected = "08:15:01 laohu/edge-01 cam-a dumping START warning suitcase#17 in dump-corner 30.0s"
    assert lines[1] == expected + " [edge-01-cam-…]"
    assert lines[2].startswith(
        "INVALID event on eagleeye/v1/laohu/edge-01/events/cam-a/dumping: phase: 'begin'"
    )
    assert lines[3].startswith("INVALID event on") and "not JSON" in lines[3]
    assert lines[4].startswith("08:16:01") and " UPDATE " in lines[4]
    assert lines[5].startswith("08:17:01") and " UPDATE " in lines[5]
    assert " END " in lines[6] and " cam-b " in lines[7] and len(lines) == 8
    assert "5 events, 2 duplicates dropped, 2 invalid, 1 snapshots saved" in err
    saved = snaps / f"{first.event_id}.jpg"
    assert saved.read_bytes() == jpeg
    assert (
        first.snapshot is not None and hashlib.sha256(saved.read_bytes()).hexdigest() == first.snapshot.sha256
    )


def test_listen_json_mode_and_timeout(mosquitto: Mosquitto) -> None:  # noqa: F811
    proc = _listen("--url", mosquitto.url, "--json", "--count", "5", "--timeout", "2")
    events = [make_event(seq) for seq in range(2)]
    _raw_publish(mosquitto.port, [(TOPICS.event("cam-a", "dumping"), e.to_json().encode()) for e in events])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "only 2 of 5 events" in err  # timed out before --count
    assert [json.loads(line) for line in out.splitlines()] == [e.to_dict() for e in events]


def test_listen_reports_an_unreachable_broker(tmp_path: Path) -> None:
    from tests.broker import free_port

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.tools.listen",
            "--url",
            f"mqtt://u:hunter2@127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot reach mqtt://u:***@127.0.0.1:" in result.stderr and "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
