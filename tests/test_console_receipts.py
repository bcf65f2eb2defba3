"""The console's receipt sender: one batched receipt per box after a commit, and the platform status."""

from __future__ import annotations

import json
from typing import Any

from edge_agent.console.receipts import ReceiptSender
from edge_agent.contract.receipts import parse_platform_status, parse_receipts
from tests.broker import make_event


class Recorder:
    """Stands in for the paho client: only `publish` is used."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Any:
        self.published.append((topic, payload, qos, retain))


def test_committed_events_get_one_receipt_per_box() -> None:
    sender = ReceiptSender("town/eagleeye", since="2026-11-26T08:00:00Z", name="console")
    client = Recorder()
    messages = []
    for device in ("edge-01", "edge-02"):
        for seq in range(3):
            event = make_event(seq, device=device, prefix="town/eagleeye")
            messages.append(
                (f"town/eagleeye/v1/laohu/{device}/events/cam-a/dumping", event.to_json().encode())
            )
    messages.append(("town/eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000000", b"\xff\xd8"))
    messages.append(("town/eagleeye/v1/laohu/edge-01/events/cam-a/dumping", b"not json"))
    assert sender.committed(client, messages) == 6  # type: ignore[arg-type]
    assert [(t, q, r) for t, _, q, r in client.published] == [
        ("town/eagleeye/v1/laohu/edge-01/receipts", 1, False),
        ("town/eagleeye/v1/laohu/edge-02/receipts", 1, False),
    ]
    first = parse_receipts(client.published[0][1])
    assert [(r.event_id, r.phase) for r in first] == [(f"edge-01-cam-a-{i:06d}", "start") for i in range(3)]


def test_announce_and_will_say_receipts() -> None:
    sender = ReceiptSender("eagleeye", since="2026-11-26T08:00:00Z")
    client = Recorder()
    sender.announce(client)  # type: ignore[arg-type]
    topic, payload, qos, retain = client.published[0]
    assert (topic, qos, retain) == ("eagleeye/v1/platform/status", 1, True)
    assert parse_platform_status(payload).receipts is True
    will_topic, will = sender.will()
    assert will_topic == topic and will["state"] == "offline"
    assert parse_platform_status(json.dumps(will).encode()).state == "offline"
