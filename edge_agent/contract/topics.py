"""The MQTT topic tree of PRODUCT.md, built in one place.

Every level built from config (site, device, camera, rule) must be a legal id
(`core/ids.py`); an illegal one raises TopicError here, at build time, instead of
reaching paho, which would refuse the publish and leave the item at the outbox head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.core.ids import id_problem, topic_level_problem

API_VERSION = "v1"


class TopicError(ValueError):
    """A topic level that cannot be published on; the message names it."""


_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")  # `{camera}`: the documented topic templates


def _level(what: str, value: str) -> str:
    if _PLACEHOLDER.fullmatch(value):
        return value
    problem = id_problem(value)
    if problem is not None:
        raise TopicError(f"illegal {what} {value[:80]!r} in an MQTT topic: {problem}")
    return value


def check_prefix(prefix: str) -> str:
    """The topic prefix (`mqtt.topic_prefix`), which may have several levels: `town/eagleeye`."""
    for level in prefix.split("/"):
        problem = topic_level_problem(level)
        if problem is not None:
            raise TopicError(f"illegal topic prefix {prefix[:80]!r}: {problem}")
    return prefix


@dataclass(frozen=True)
class Topics:
    prefix: str
    site: str
    device: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        _level("site id", self.site)
        _level("device id", self.device)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{API_VERSION}/{self.site}/{self.device}"

    def event(self, camera: str, rule: str) -> str:
        return f"{self.base}/events/{_level('camera id', camera)}/{_level('rule id', rule)}"

    def counts(self, camera: str, rule: str) -> str:
        """Where a `count` rule's aggregate per interval is published (retained)."""
        return f"{self.base}/counts/{_level('camera id', camera)}/{_level('rule id', rule)}"

    def snapshot(self, event_id: str) -> str:
        problem = (
            None if _PLACEHOLDER.fullmatch(event_id) else topic_level_problem(event_id)
        )  # device id + hash: longer than an id may be
        if problem is not None:
            raise TopicError(f"illegal event id {event_id[:80]!r} in an MQTT topic: {problem}")
        return f"{self.base}/snapshots/{event_id}"

    def owner_crop(self, event_id: str) -> str:
        """The JPEG crop of a left object's owner (the event's `owner.crop`), beside the snapshot."""
        return f"{self.snapshot(event_id)}/owner"

    def clip(self, event_id: str, index: int | str) -> str:
        """Chunk `index` (0-based) of an event's clip; `{index}` (a placeholder) for documentation."""
        problem = None if _PLACEHOLDER.fullmatch(event_id) else topic_level_problem(event_id)
        if problem is not None:
            raise TopicError(f"illegal event id {event_id[:80]!r} in an MQTT topic: {problem}")
        if isinstance(index, int) and index < 0:
            raise TopicError(f"clip chunk index must be 0 or more, got {index}")
        return f"{self.base}/clips/{event_id}/{index}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def camera_status(self, camera: str) -> str:
        return f"{self.base}/cameras/{_level('camera id', camera)}/status"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def receipts(self) -> str:
        """Where the platform says what it has stored of this device's events (`contract/receipts.py`)."""
        return f"{self.base}/receipts"

    @property
    def platform_status(self) -> str:
        return platform_status_topic(self.prefix)

    @property
    def available(self) -> str:
        """Plain `online` / `offline` (retained), beside the JSON status, for Frigate-style consumers."""
        return f"{self.base}/available"

    def rule_state(self, camera: str, rule: str) -> str:
        """`ON` while any incident of the rule is open, else `OFF` (retained)."""
        return f"{self.base}/rules/{_level('camera id', camera)}/{_level('rule id', rule)}/state"

    def command(self, action: str) -> str:
        """Where the platform sends this box a signed command (`eagleeye.command/1`)."""
        return f"{self.base}/commands/{_level('action', action)}"

    @property
    def commands_filter(self) -> str:
        """What the box subscribes to: every action's commands, never the results beside them."""
        return f"{self.base}/commands/+"

    def command_result(self, action: str) -> str:
        """Where the box answers a command (`eagleeye.command-result/1`)."""
        return f"{self.command(action)}/result"

    @property
    def command_results_filter(self) -> str:
        return f"{self.base}/commands/+/result"

    def latest_snapshot(self, camera: str) -> str:
        """The camera's newest event snapshot, a JPEG (retained)."""
        return f"{self.base}/cameras/{_level('camera id', camera)}/snapshot"


def platform_status_topic(prefix: str) -> str:
    """The platform's retained status (online, offline; whether it sends receipts)."""
    return f"{check_prefix(prefix)}/{API_VERSION}/platform/status"


def device_receipts(prefix: str, site: str, device: str) -> str:
    """Where a platform publishes the receipts of one device's events."""
    return Topics(prefix, site, device).receipts


def all_devices_filter(prefix: str) -> str:
    """Subscription filter for every device's events under a prefix (for platforms)."""
    return f"{prefix}/{API_VERSION}/+/+/events/#"
