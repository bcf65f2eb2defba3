"""One MQTT message -> what the console stores. Pure functions: no database, no network.

The topic tree is PRODUCT.md's: `{prefix}/v1/{site}/{device}/...`. A message
that breaks the contract (not JSON, a schema error, a payload naming another
site, device, camera or rule than its topic) becomes a `Rejected`: an ACL lets
a box write only its own subtree, so a payload that disagrees with its topic is
either a bug or a box speaking for another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from edge_agent.contract.schemas import load_schema, validate
from edge_agent.contract.topics import API_VERSION


@cache
def _checker(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _schema_error(name: str, data: Any) -> str | None:
    """The first problem of `data` against schema `name`, or None. `is_valid` first: the ingest's
    hot path, a third faster than collecting errors that are almost never there."""
    if _checker(name).is_valid(data):
        return None
    errors = validate(name, data)
    return errors[0] if errors else "invalid"


@dataclass(frozen=True)
class EventRecord:
    event: dict[str, Any]
    topic: str
    payload: str
    ts_epoch: float
    started_epoch: float


@dataclass(frozen=True)
class SnapshotRecord:
    site: str
    device: str
    event_id: str
    topic: str
    jpeg: bytes
    sha256: str


@dataclass(frozen=True)
class DeviceStatusRecord:
    site: str
    device: str
    state: str
    since: str
    reason: str | None


@dataclass(frozen=True)
class CameraStatusRecord:
    site: str
    device: str
    camera: str
    state: str
    since: str


@dataclass(frozen=True)
class StatsRecord:
    site: str
    device: str
    ts: str
    outbox_depth: int | None
    outbox_dropped: int | None
    payload: str


@dataclass(frozen=True)
class CountRecord:
    site: str
    device: str
    camera: str
    rule: str
    payload: str
    payload_sha256: str


@dataclass(frozen=True)
class Rejected:
    topic: str
    error: str
    payload: bytes


@dataclass(frozen=True)
class Ignored:
    """A topic of the tree the console does not store (e.g. doctor's test messages)."""

    topic: str


Record = (
    EventRecord
    | SnapshotRecord
    | DeviceStatusRecord
    | CameraStatusRecord
    | StatsRecord
    | CountRecord
    | Rejected
    | Ignored
)


def epoch(ts: str) -> float:
    """RFC 3339 `2026-11-26T08:15:32.400Z` -> seconds since the epoch."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _json_object(topic: str, payload: bytes) -> dict[str, Any] | Rejected:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        return Rejected(topic, f"not JSON: {err}", payload)
    if not isinstance(data, dict):
        return Rejected(topic, "not a JSON object", payload)
    return data


def parse_message(prefix: str, topic: str, payload: bytes) -> Record:
    """What `payload` on `topic` means for the console's database."""
    levels = topic.split("/")
    if len(levels) < 5 or levels[0] != prefix or levels[1] != API_VERSION:
        return Ignored(topic)
    site, device, kind, rest = levels[2], levels[3], levels[4], levels[5:]
    if kind == "events" and len(rest) == 2:
        return _event(topic, payload, site, device, rest[0], rest[1])
    if kind == "snapshots" and len(rest) == 1:
        return SnapshotRecord(site, device, rest[0], topic, payload, hashlib.sha256(payload).hexdigest())
    if kind == "status" and not rest:
        return _device_status(topic, payload, site, device)
    if kind == "cameras" and len(rest) == 2 and rest[1] == "status":
        return _camera_status(topic, payload, site, device, rest[0])
    if kind == "stats" and not rest:
        return _stats(topic, payload, site, device)
    if kind == "counts" and len(rest) == 2:
        data = _json_object(topic, payload)
        if isinstance(data, Rejected):
            return data
        text = payload.decode("utf-8")
        return CountRecord(site, device, rest[0], rest[1], text, hashlib.sha256(payload).hexdigest())
    return Ignored(topic)


def _event(topic: str, payload: bytes, site: str, device: str, camera: str, rule: str) -> Record:
    data = _json_object(topic, payload)
    if isinstance(data, Rejected):
        return data
    error = _schema_error("event", data)
    if error is not None:
        return Rejected(topic, f"event schema: {error}", payload)
    for key, want in (("site", site), ("device", device), ("camera", camera), ("rule", rule)):
        if data[key] != want:
            return Rejected(topic, f"the payload's {key} {data[key]!r} is not the topic's {want!r}", payload)
    return EventRecord(data, topic, payload.decode("utf-8"), epoch(data["ts"]), epoch(data["started_at"]))


def _device_status(topic: str, payload: bytes, site: str, device: str) -> Record:
    data = _json_object(topic, payload)
    if isinstance(data, Rejected):
        return data
    error = _schema_error("status", data)
    if error is not None:
        return Rejected(topic, f"status schema: {error}", payload)
    return DeviceStatusRecord(site, device, data["state"], data["since"], data.get("reason"))


def _camera_status(topic: str, payload: bytes, site: str, device: str, camera: str) -> Record:
    data = _json_object(topic, payload)
    if isinstance(data, Rejected):
        return data
    error = _schema_error("camera-status", data)
    if error is not None:
        return Rejected(topic, f"camera status schema: {error}", payload)
    return CameraStatusRecord(site, device, camera, data["state"], data["since"])


def _stats(topic: str, payload: bytes, site: str, device: str) -> Record:
    data = _json_object(topic, payload)
    if isinstance(data, Rejected):
        return data
    error = _schema_error("stats", data)
    if error is not None:
        return Rejected(topic, f"stats schema: {error}", payload)
    outbox = data["outbox"]
    return StatsRecord(
        site, device, data["ts"], outbox.get("depth"), outbox.get("dropped_total"), payload.decode("utf-8")
    )


def device_of(record: Record) -> tuple[str, str] | None:
    """(site, device) the record came from, for `devices.last_seen`."""
    if isinstance(record, EventRecord):
        return record.event["site"], record.event["device"]
    if isinstance(record, (Rejected, Ignored)):
        return None
    return record.site, record.device
