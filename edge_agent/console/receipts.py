"""The console's side of end-to-end receipts: announce them, and send them after each commit.

A box under `mqtt.receipts: auto` (the default) keeps every event in its outbox
after the broker's PUBACK once it has seen a platform announce receipts, until
a receipt says the event is stored. So the console:

1. registers the Last Will `ReceiptSender.will(...)` on its client (`make_client(will=...)`),
2. calls `announce(client)` in `on_connect` (a retained `online` with `receipts: true`),
3. calls `committed(client, messages)` after each transaction that stored messages,
   duplicates included (the box may not have had the first receipt),
4. calls `offline(client)` before a clean disconnect.

The payloads are the contract's (`contract/receipts.py`); this module only groups
the committed events per box and publishes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as paho

from edge_agent.contract.receipts import Receipt, platform_status, receipt_payloads
from edge_agent.contract.topics import API_VERSION, device_receipts, platform_status_topic
from edge_agent.core.types import iso_utc

logger = logging.getLogger(__name__)


class ReceiptSender:
    """Publishes batched receipts for committed events, and the platform's retained status."""

    def __init__(self, prefix: str, *, since: str | None = None, name: str | None = None) -> None:
        self.prefix = prefix
        self.since = since or iso_utc()
        self.name = name
        self.status_topic = platform_status_topic(prefix)
        self.sent_total = 0

    def will(self) -> tuple[str, dict[str, Any]]:
        """The Last Will for `make_client(..., will=...)`: the platform offline (still receipting)."""
        return self.status_topic, json.loads(self._status("offline"))

    def announce(self, client: paho.Client) -> None:
        """In `on_connect`: tell every box (retained) that this platform sends receipts."""
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)

    def offline(self, client: paho.Client) -> None:
        """Before a clean disconnect (a crash leaves it to the Last Will)."""
        client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)

    def _status(self, state: str) -> bytes:
        # clip receipts too: the store says so each time an event's clip is complete
        return platform_status(state, receipts=True, since=self.since, name=self.name, clip_receipts=True)

    def committed(self, client: paho.Client, messages: Iterable[tuple[str, bytes]]) -> int:
        """After a commit: one receipt message per box (up to 500 items each) for the event
        messages among `messages` (topic, payload); returns how many items were sent."""
        per_box: dict[str, list[Receipt]] = {}
        for topic, payload in messages:
            receipt = self._receipt_of(topic, payload)
            if receipt is not None:
                levels = topic.split("/")
                where = device_receipts(self.prefix, levels[-5], levels[-4])
                per_box.setdefault(where, []).append(receipt)
        sent = 0
        for where, receipts in per_box.items():
            for payload in receipt_payloads(receipts):
                client.publish(where, payload, qos=1)
            sent += len(receipts)
        self.sent_total += sent
        return sent

    def clips_stored(self, client: paho.Client, clips: Iterable[tuple[str, str, str]]) -> int:
        """After a commit: a clip receipt (`{"event_id", "clip": true}`) per (site, device, event_id)
        whose clip is complete and stored; returns how many items were sent."""
        per_box: dict[str, list[Receipt]] = {}
        for site, device, event_id in sorted(set(clips)):
            per_box.setdefault(device_receipts(self.prefix, site, device), []).append(
                Receipt(event_id, clip=True)
            )
        sent = 0
        for where, receipts in per_box.items():
            for payload in receipt_payloads(receipts):
                client.publish(where, payload, qos=1)
            sent += len(receipts)
        self.sent_total += sent
        return sent

    def _receipt_of(self, topic: str, payload: bytes) -> Receipt | None:
        levels = topic.split("/")
        head = f"{self.prefix}/{API_VERSION}".split("/")
        if len(levels) != len(head) + 5 or levels[: len(head)] != head or levels[len(head) + 2] != "events":
            return None  # snapshots are covered by their event's receipt; statuses need none
        try:
            event = json.loads(payload)
            return Receipt.of_event(event)
        except (ValueError, KeyError, TypeError):
            # Stored among the rejected messages, but it names nothing a box can match.
            logger.debug("no receipt for a message on %s: it names no event phase", topic)
            return None
