"""One MQTT message -> what the console stores. Pure functions: no database, no network.

The topic tree is PRODUCT.md's: `{prefix}/v1/{site}/{device}/...`. A message
that breaks the contract (not JSON, a schema error, a payload naming another
site, device, camera or rule than its topic) becomes a `Rejected`: an ACL lets
a box write only its own subtree, so a payload that disagrees with its topic is
either a bug or a box speaking for another. A message over its kind's size cap
(`Limits`) becomes a `Refused` before it is even parsed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from edge_agent.console.announcement import Announcement, announcement_of
from edge_agent.contract.commands import CommandError, CommandResult, parse_result
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
class OwnerCropRecord:
    """A left object's owner crop (`snapshots/{event_id}/owner`)."""

    site: str
    device: str
    event_id: str
    jpeg: bytes
    sha256: str


@dataclass(frozen=True)
class ClipChunkRecord:
    """Chunk `index` of an event's clip (`clips/{event_id}/{index}`), raw bytes."""

    site: str
    device: str
    event_id: str
    index: int
    data: bytes


@dataclass(frozen=True)
class Limits:
    """Per-message caps in bytes (console config `limits`); `rejected_keep_bytes` is how much of a
    rejected payload is kept."""

    event_bytes: int = 262144
    snapshot_bytes: int = 2097152
    clip_chunk_bytes: int = 300000
    count_bytes: int = 65536
    status_bytes: int = 65536
    stats_bytes: int = 262144
    rejected_keep_bytes: int = 4096

    @classmethod
    def of(cls, cfg: object | None) -> Limits:
        """From any object with these attributes (the config's `limits`); defaults for the rest."""
        if cfg is None:
            return cls()
        if isinstance(cfg, Limits):
            return cfg
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: int(getattr(cfg, n)) for n in names if getattr(cfg, n, None) is not None})


# topic kind -> (refused kind, the Limits field that caps it)
CAPS = {
    "events": ("event", "event_bytes"),
    "snapshots": ("snapshot", "snapshot_bytes"),
    "clips": ("clip_chunk", "clip_chunk_bytes"),
    "counts": ("count", "count_bytes"),
    "status": ("status", "status_bytes"),
    "cameras": ("status", "status_bytes"),
    "stats": ("stats", "stats_bytes"),
}


@dataclass(frozen=True)
class DeviceStatusRecord:
    site: str
    device: str
    state: str
    since: str
    reason: str | None
    announced: Announcement | None = None


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
    interval_start: str
    interval_epoch: float
    interval_s: float
    complete: bool
    count: int


@dataclass(frozen=True)
class Rejected:
    topic: str
    error: str
    payload: bytes
    size: int | None = None  # the payload's size when `payload` keeps only its start


@dataclass(frozen=True)
class Refused:
    """A message over its kind's size cap: acknowledged, counted, not stored."""

    site: str
    device: str
    kind: str
    size: int
    topic: str


@dataclass(frozen=True)
class Ignored:
    """A topic of the tree the console does not store (e.g. doctor's test messages)."""

    topic: str


@dataclass(frozen=True)
class CommandResultRecord:
    """A box's answer to a command (`.../commands/{action}/result`): it completes the console's row
    of that command, even one that timed out while the box was away."""

    site: str
    device: str
    result: CommandResult


Record = (
    EventRecord
    | SnapshotRecord
    | OwnerCropRecord
    | ClipChunkRecord
    | DeviceStatusRecord
    | CameraStatusRecord
    | StatsRecord
    | CountRecord
    | CommandResultRecord
    | Rejected
    | Refused
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


def _checked(
    topic: str, payload: bytes, schema: str, what: str, agree: dict[str, str] | None = None
) -> dict[str, Any] | Rejected:
    """The payload as a JSON object that passes its schema and names what its topic names."""
    data = _json_object(topic, payload)
    if isinstance(data, Rejected):
        return data
    error = _schema_error(schema, data)
    if error is not None:
        return Rejected(topic, f"{what} schema: {error}", payload)
    for key, want in (agree or {}).items():
        if data[key] != want:
            return Rejected(topic, f"the payload's {key} {data[key]!r} is not the topic's {want!r}", payload)
    return data


def parse_message(prefix: str, topic: str, payload: bytes, limits: Limits | None = None) -> Record:
    """What `payload` on `topic` means for the console's database (`limits`: the defaults if None)."""
    limits = limits or Limits()
    levels = topic.split("/")
    if len(levels) < 5 or levels[0] != prefix or levels[1] != API_VERSION:
        return Ignored(topic)
    site, device, kind = levels[2], levels[3], levels[4]
    cap = CAPS.get(kind)
    if cap is not None and len(payload) > getattr(limits, cap[1]):
        return Refused(site, device, cap[0], len(payload), topic)
    record = _parse(topic, payload, site, device, kind, levels[5:])
    keep = limits.rejected_keep_bytes
    if isinstance(record, Rejected) and len(record.payload) > keep:
        return Rejected(record.topic, record.error, record.payload[:keep], len(record.payload))
    return record


def _parse(topic: str, payload: bytes, site: str, device: str, kind: str, rest: list[str]) -> Record:
    if kind == "events" and len(rest) == 2:
        return _event(topic, payload, site, device, rest[0], rest[1])
    if kind == "snapshots" and len(rest) == 1:
        return SnapshotRecord(site, device, rest[0], topic, payload, hashlib.sha256(payload).hexdigest())
    if kind == "snapshots" and len(rest) == 2 and rest[1] == "owner":
        return OwnerCropRecord(site, device, rest[0], payload, hashlib.sha256(payload).hexdigest())
    if kind == "clips" and len(rest) == 2:
        if not rest[1].isdigit() or len(rest[1]) > 6:
            return Rejected(topic, f"clip chunk index {rest[1][:20]!r} is not a number 0..999999", payload)
        return ClipChunkRecord(site, device, rest[0], int(rest[1]), payload)
    if kind == "status" and not rest:
        return _device_status(topic, payload, site, device)
    if kind == "cameras" and len(rest) == 2 and rest[1] == "status":
        return _camera_status(topic, payload, site, device, rest[0])
    if kind == "stats" and not rest:
        return _stats(topic, payload, site, device)
    if kind == "counts" and len(rest) == 2:
        return _count(topic, payload, site, device, rest[0], rest[1])
    if kind == "commands" and len(rest) == 2 and rest[1] == "result":
        return _command_result(topic, payload, site, device, rest[0])
    return Ignored(topic)


def _command_result(topic: str, payload: bytes, site: str, device: str, action: str) -> Record:
    try:
        result = parse_result(payload)
    except CommandError as err:
        return Rejected(topic, str(err), payload)
    for key, want in (("site", site), ("device", device), ("action", action)):
        got = getattr(result, key)
        if got != want:
            return Rejected(topic, f"the payload's {key} {got!r} is not the topic's {want!r}", payload)
    return CommandResultRecord(site, device, result)


def _count(topic: str, payload: bytes, site: str, device: str, camera: str, rule: str) -> Record:
    data = _checked(
        topic, payload, "count", "count", {"site": site, "device": device, "camera": camera, "rule": rule}
    )
    if isinstance(data, Rejected):
        return data
    return CountRecord(
        site,
        device,
        camera,
        rule,
        payload.decode("utf-8"),
        hashlib.sha256(payload).hexdigest(),
        data["interval_start"],
        epoch(data["interval_start"]),
        float(data["interval_s"]),
        bool(data["complete"]),
        int(data["count"]),
    )


def _event(topic: str, payload: bytes, site: str, device: str, camera: str, rule: str) -> Record:
    data = _checked(
        topic, payload, "event", "event", {"site": site, "device": device, "camera": camera, "rule": rule}
    )
    if isinstance(data, Rejected):
        return data
    return EventRecord(data, topic, payload.decode("utf-8"), epoch(data["ts"]), epoch(data["started_at"]))


def _device_status(topic: str, payload: bytes, site: str, device: str) -> Record:
    data = _checked(topic, payload, "status", "status")
    if isinstance(data, Rejected):
        return data
    return DeviceStatusRecord(
        site, device, data["state"], data["since"], data.get("reason"), announcement_of(data)
    )


def _camera_status(topic: str, payload: bytes, site: str, device: str, camera: str) -> Record:
    data = _checked(topic, payload, "camera-status", "camera status")
    if isinstance(data, Rejected):
        return data
    return CameraStatusRecord(site, device, camera, data["state"], data["since"])


def _stats(topic: str, payload: bytes, site: str, device: str) -> Record:
    data = _checked(topic, payload, "stats", "stats")
    if isinstance(data, Rejected):
        return data
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
