"""Poison messages against a real Mosquitto: an item refused for its content never blocks the rest.

Three ways an item is refused: paho itself (a `+` in the topic: ValueError before
anything is sent), the broker's ACL (MQTT 5: PUBACK 0x87; MQTT 3.1.1: Mosquitto
acknowledges and drops it), the broker's packet limit (Mosquitto closes the
connection, in both protocols: caught by the repeated failure of the same item).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.delivery.ledger import POISON_STRIKES
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import (
    Mosquitto,
    Subscriber,
    assert_order_per_camera,
    dedup,
    make_event,
    mosquitto,  # noqa: F401  (fixture)
    mosquitto_factory,  # noqa: F401  (fixture)
)

TOPICS = Topics("eagleeye", "laohu", "edge-01")
EVENTS = "eagleeye/v1/+/+/events/#"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "outbox.sqlite3", 16)
    yield ob
    ob.close()


def _publisher(url: str, outbox: Outbox, protocol: str) -> MqttPublisher:
    cfg = MqttConfig(url=url, keepalive_s=5, stats_interval_s=60, protocol=protocol)
    return MqttPublisher(cfg, outbox, TOPICS, backoff=Backoff(0.2, 0.5))


def _fill(outbox: Outbox, poison: Callable[[Outbox], int], before: int = 10, after: int = 10) -> int:
    """`before` events, the poison item, `after` events; returns the poison item's id."""
    sink = OutboxSink(outbox, TOPICS)
    for seq in range(before):
        sink.emit(make_event(seq, camera=("cam-a", "cam-b")[seq % 2]), None)
    poison_id = poison(outbox)
    for seq in range(before, before + after):
        sink.emit(make_event(seq, camera=("cam-a", "cam-b")[seq % 2]), None)
    return poison_id


def _deliver(broker: Mosquitto, outbox: Outbox, protocol: str, unique: int) -> tuple[list[dict], dict]:
    with Subscriber(broker.port, [EVENTS], protocol=protocol) as sub:
        pub = _publisher(broker.url, outbox, protocol)
        pub.start()
        try:
            assert pub.wait_drained(30) == 0, "the poison item still blocks the outbox"
            events = sub.wait_events(unique, 10)
            stats = pub.stats_payload()
        finally:
            pub.stop(5)
    return events, stats


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_wildcard_in_a_topic_is_dead_lettered_and_the_items_behind_it_arrive(
    mosquitto: Mosquitto,  # noqa: F811
    outbox: Outbox,
    protocol: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad_topic = "eagleeye/v1/laohu/edge-01/events/cam-a/rule+1"
    poison_id = _fill(outbox, lambda ob: ob.put(bad_topic, b'{"x": 1}', camera="cam-a"))
    events, stats = _deliver(mosquitto, outbox, protocol, 20)
    assert len(dedup(events)) == 20 and len(events) == 20
    assert_order_per_camera(events)
    assert [e["details"]["seq"] for e in events] == list(range(20))  # the rest in their order
    (dead,) = outbox.dead_letters()
    assert dead.id == poison_id and dead.topic == bad_topic and dead.tries == 1
    assert "wildcard" in dead.reason
    assert stats["outbox"]["dead_lettered"] == 1 and stats["mqtt"]["rejected"] == 1
    assert validate("stats", stats) == []
    assert outbox.depth() == 0
    lines = [r for r in caplog.records if "dead letters" in r.getMessage()]
    assert len(lines) == 1  # reported once
    # Kept across a restart, for inspection: the file still holds it.
    outbox.close()
    with Outbox(outbox.path, 16) as again:
        assert [d.id for d in again.dead_letters()] == [poison_id]
        assert again.counters()["dead_lettered"] == 1 and again.depth() == 0


def _acl(tmp_path: Path) -> Path:
    path = tmp_path / "acl"
    path.write_text("topic readwrite #\ntopic deny eagleeye/v1/laohu/edge-01/events/cam-x/#\n")
    return path


def _denied(ob: Outbox) -> int:
    event = make_event(999, camera="cam-x")
    return ob.put(TOPICS.event("cam-x", event.rule), event.to_json().encode(), camera="cam-x")


def test_an_acl_refusal_in_mqtt5_is_dead_lettered_with_the_reason(
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    outbox: Outbox,
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(acl_file=_acl(tmp_path)).start()
    poison_id = _fill(outbox, _denied)
    events, stats = _deliver(broker, outbox, "5", 20)
    assert [e["details"]["seq"] for e in dedup(events)] == list(range(20))
    assert_order_per_camera(events)
    (dead,) = outbox.dead_letters()
    assert dead.id == poison_id and dead.camera == "cam-x" and "Not authorized" in dead.reason
    assert stats["outbox"]["dead_lettered"] == 1


def test_an_acl_refusal_in_mqtt311_does_not_block_the_queue(
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    outbox: Outbox,
    tmp_path: Path,
) -> None:
    """Mosquitto acks a 3.1.1 publish its ACL refuses and drops it: nothing to count, nothing stuck."""
    broker = mosquitto_factory(acl_file=_acl(tmp_path)).start()
    _fill(outbox, _denied)
    events, stats = _deliver(broker, outbox, "3.1.1", 20)
    assert [e["details"]["seq"] for e in dedup(events)] == list(range(20))
    assert all(e["camera"] != "cam-x" for e in events)
    assert stats["outbox"]["depth"] == 0 and stats["outbox"]["dead_lettered"] == 0


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_an_item_too_large_for_the_broker_is_moved_aside_after_repeated_disconnects(
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    outbox: Outbox,
    protocol: str,
) -> None:
    broker = mosquitto_factory(extra_conf="max_packet_size 20000\n").start()
    big = TOPICS.snapshot("edge-01-cam-a-000999")
    poison_id = _fill(outbox, lambda ob: ob.put(big, b"\xff\xd8" + b"x" * 50_000, camera="cam-a"))
    t0 = time.monotonic()
    events, stats = _deliver(broker, outbox, protocol, 20)
    assert [e["details"]["seq"] for e in dedup(events)] == list(range(20))
    assert_order_per_camera(dedup(events))
    (dead,) = outbox.dead_letters()
    assert dead.id == poison_id and dead.tries == POISON_STRIKES
    assert "closed the connection" in dead.reason
    assert stats["outbox"]["dead_lettered"] == 1
    assert stats["mqtt"]["reconnects"] >= POISON_STRIKES
    # What was in flight when the first connection broke is sent once more; after that the
    # suspects go one at a time, so the later breaks re-send nothing else.
    assert len(events) <= 20 + 20
    assert time.monotonic() - t0 < 30
