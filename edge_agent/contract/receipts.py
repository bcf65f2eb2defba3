"""End-to-end receipts: what the platform stored, and the platform's own status.

A box keeps each event (and its snapshot) in its outbox after the broker's PUBACK
until the platform says it has committed it: a receipt on
`{prefix}/v1/{site}/{device}/receipts` naming `(event_id, phase, ts)`. The
platform also keeps a retained `{prefix}/v1/platform/status` saying whether it
sends receipts, with a Last Will `offline`; a box under `mqtt.receipts: auto`
waits for receipts only once it has seen a platform announce them.

Built and parsed here, so the box, `edge-agent listen` and the town console
speak exactly the same payloads (`mqtt/receipt.schema.json`,
`mqtt/platform-status.schema.json`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from edge_agent.contract.schemas import validate

RECEIPT_SCHEMA = "eagleeye.receipt/1"
PLATFORM_STATUS_SCHEMA = "eagleeye.platform-status/1"
MAX_ITEMS = 500  # per receipt message: a backlog drained at once is answered in several


class ReceiptError(ValueError):
    """A receipt or platform status that breaks its schema; the message says where."""


@dataclass(frozen=True)
class Receipt:
    """One stored thing: an event phase (`phase`, and `ts` for one update of several) or a clip."""

    event_id: str
    phase: str | None = None
    ts: str | None = None
    clip: bool = False

    def to_dict(self) -> dict[str, Any]:
        if self.clip:
            return {"event_id": self.event_id, "clip": True}
        out: dict[str, Any] = {"event_id": self.event_id, "phase": self.phase}
        if self.ts is not None:
            out["ts"] = self.ts
        return out

    @staticmethod
    def of_event(event: dict[str, Any]) -> Receipt:
        """The receipt of a stored event payload (its `event_id`, `phase` and `ts`)."""
        return Receipt(str(event["event_id"]), str(event["phase"]), str(event["ts"]))

    def covers(self, event_id: str, phase: str, ts: str) -> bool:
        """True when this receipt says that event phase is stored (no `ts`: every copy of the phase)."""
        if self.clip or event_id != self.event_id or phase != self.phase:
            return False
        return self.ts is None or self.ts == ts


def receipt_payloads(receipts: Iterable[Receipt], max_items: int = MAX_ITEMS) -> Iterator[bytes]:
    """The receipt messages for `receipts`, at most `max_items` each (none for none)."""
    batch: list[dict[str, Any]] = []
    for receipt in receipts:
        batch.append(receipt.to_dict())
        if len(batch) >= max_items:
            yield _receipt_message(batch)
            batch = []
    if batch:
        yield _receipt_message(batch)


def _receipt_message(items: list[dict[str, Any]]) -> bytes:
    payload = {"schema": RECEIPT_SCHEMA, "items": items}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def parse_receipts(payload: bytes) -> list[Receipt]:
    """The receipts of one message; raises ReceiptError naming what is wrong."""
    data = _json(payload, "receipt")
    errors = validate("receipt", data)
    if errors:
        raise ReceiptError(f"receipt: {errors[0]}")
    out = []
    for item in data["items"]:
        if item.get("clip"):
            out.append(Receipt(item["event_id"], clip=True))
        else:
            out.append(Receipt(item["event_id"], item["phase"], item.get("ts")))
    return out


@dataclass(frozen=True)
class PlatformStatus:
    """The platform's retained status: online or offline, and whether it sends receipts."""

    state: str
    receipts: bool
    since: str
    name: str | None = None
    clip_receipts: bool = False  # it also sends `{"event_id", "clip": true}` once a clip is stored

    def to_payload(self) -> bytes:
        data: dict[str, Any] = {
            "schema": PLATFORM_STATUS_SCHEMA,
            "state": self.state,
            "receipts": self.receipts,
            "since": self.since,
        }
        if self.name is not None:
            data["name"] = self.name
        if self.clip_receipts:
            data["clip_receipts"] = True
        return json.dumps(data, separators=(",", ":")).encode("utf-8")


def platform_status(
    state: str, *, receipts: bool, since: str, name: str | None = None, clip_receipts: bool = False
) -> bytes:
    """A platform status payload (`online` after connect, `offline` as the Last Will)."""
    return PlatformStatus(state, receipts, since, name, clip_receipts).to_payload()


def parse_platform_status(payload: bytes) -> PlatformStatus:
    """The platform status of one message; raises ReceiptError naming what is wrong."""
    data = _json(payload, "platform status")
    errors = validate("platform-status", data)
    if errors:
        raise ReceiptError(f"platform status: {errors[0]}")
    clips = data.get("clip_receipts") is True
    return PlatformStatus(data["state"], bool(data["receipts"]), data["since"], data.get("name"), clips)


def _json(payload: bytes, what: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError as err:
        raise ReceiptError(f"{what}: not JSON: {err}") from err
