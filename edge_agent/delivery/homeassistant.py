"""Home Assistant MQTT discovery: each camera a device, each rule a binary sensor.

Opt-in (`homeassistant: {discovery: true}`). Everything goes through the outbox, retained, so
it is as durable and as ordered as the events it follows: a rule's state `ON` is published
after the start event that opened it, `OFF` after the end that closed its last incident.

A rule's binary sensor is `ON` while any incident of that rule on that camera is open: the
open incidents are kept by event id, so two people dwelling at once keep it `ON` until the
second one leaves, and a start delivered twice is counted once. Instant rules (a line
crossing: a start and no end) send a non-retained `ON`, and their sensor's `off_delay` turns
it `OFF` again, as Home Assistant does for motion sensors.

Discovery configs are published when delivery starts and again on a config reload; the
topics published are remembered in a small JSON file beside the outbox, so an entity whose
rule or camera is gone (or all of them, when discovery is switched off) is removed with an
empty retained config, also across restarts.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.contract.topics import Topics
from edge_agent.core.counts import CountReport
from edge_agent.core.types import Event
from edge_agent.delivery.outbox import Outbox, OutboxMessage
from edge_agent.delivery.outbox_sink import OutboxSink

logger = logging.getLogger(__name__)

STATE_FILE = "homeassistant-discovery.json"
INSTANT_OFF_DELAY_S = 10
COUNT_KIND = "count"
# Home Assistant device classes by rule kind; kinds not named here get none.
DEVICE_CLASS = {
    "presence": "occupancy",
    "dwell": "occupancy",
    "crowd": "occupancy",
    "line_cross": "motion",
    "left_object": "problem",
    "vendor": "problem",
}


@dataclass(frozen=True)
class HaRule:
    """One rule of one camera as Home Assistant sees it."""

    camera: str
    rule: str
    kind: str
    instant: bool = False  # a start and no end (line crossings)


@dataclass(frozen=True)
class HaSetup:
    """What discovery announces: the site's name and every camera's rules (built in app/wiring.py)."""

    prefix: str
    site_name: str
    cameras: Mapping[str, Sequence[HaRule]]


def _slug(text: str) -> str:
    """Home Assistant's node and object ids take letters, digits, `_` and `-` only."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in text)


class Discovery:
    """The discovery config of every entity, keyed by its config topic."""

    def __init__(self, topics: Topics, setup: HaSetup) -> None:
        self.topics = topics
        self.setup = setup
        self.node = _slug(f"eagleeye_{topics.site}_{topics.device}")

    def _topic(self, component: str, object_id: str) -> str:
        return f"{self.setup.prefix}/{component}/{self.node}/{_slug(object_id)}/config"

    def _common(self, component: str, camera: str, object_id: str, name: str) -> dict[str, Any]:
        where = self.setup.site_name or self.topics.site
        return {
            "name": name,
            "unique_id": f"{self.node}_{_slug(object_id)}",
            # `default_entity_id` replaced `object_id` in Home Assistant 2025.10.
            "default_entity_id": f"{component}.{self.node}_{_slug(object_id)}",
            "device": {
                "identifiers": [f"{self.node}_{_slug(camera)}"],
                "name": f"{where} {camera}",
                "manufacturer": "Eagle Eye",
                "model": f"edge-agent camera on {self.topics.device}",
                "sw_version": __version__,
            },
            "origin": {"name": "edge-agent", "sw_version": __version__},
            # The device status topic carries the Last Will, so a box that loses power turns
            # unavailable; it is JSON, hence the template.
            "availability": [
                {
                    "topic": self.topics.status,
                    "value_template": "{{ value_json.state }}",
                    "payload_available": "online",
                    "payload_not_available": "offline",
                }
            ],
            "qos": 1,
        }

    def configs(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for camera, rules in self.setup.cameras.items():
            status_id = f"{camera}_status"
            out[self._topic("sensor", status_id)] = {
                **self._common("sensor", camera, status_id, "camera status"),
                "state_topic": self.topics.camera_status(camera),
                "value_template": "{{ value_json.state }}",
                "device_class": "enum",
                "options": ["online", "offline", "stalled"],
                "entity_category": "diagnostic",
            }
            snap_id = f"{camera}_snapshot"
            out[self._topic("image", snap_id)] = {
                **self._common("image", camera, snap_id, "latest snapshot"),
                "image_topic": self.topics.latest_snapshot(camera),
                "content_type": "image/jpeg",
            }
            for r in rules:
                object_id = f"{camera}_{r.rule}"
                if r.kind == COUNT_KIND:
                    # The count rule publishes one aggregate per interval (mqtt/count.schema.json);
                    # `count` is the interval's number, the whole aggregate goes into the attributes.
                    out[self._topic("sensor", object_id)] = {
                        **self._common("sensor", camera, object_id, r.rule),
                        "state_topic": self.topics.counts(camera, r.rule),
                        "value_template": "{{ value_json.count }}",
                        "json_attributes_topic": self.topics.counts(camera, r.rule),
                        "state_class": "measurement",
                        "icon": "mdi:counter",
                    }
                    continue
                config: dict[str, Any] = {
                    **self._common("binary_sensor", camera, object_id, r.rule),
                    "state_topic": self.topics.rule_state(camera, r.rule),
                    "payload_on": "ON",
                    "payload_off": "OFF",
                }
                if r.kind in DEVICE_CLASS:
                    config["device_class"] = DEVICE_CLASS[r.kind]
                if r.instant:
                    config["off_delay"] = INSTANT_OFF_DELAY_S
                out[self._topic("binary_sensor", object_id)] = config
        return out

    def state_topics(self) -> list[str]:
        """The retained state topics this setup writes (cleared with the entity when it goes)."""
        out = []
        for camera, rules in self.setup.cameras.items():
            out.append(self.topics.latest_snapshot(camera))
            out += [self.topics.rule_state(camera, r.rule) for r in rules if r.kind != COUNT_KIND]
        return out


def _message(
    topic: str, payload: bytes, severity: str = "warning", camera: str | None = None
) -> OutboxMessage:
    return OutboxMessage(topic, payload, camera=camera, severity=severity, qos=1, retain=True)


def announce(outbox: Outbox, topics: Topics, setup: HaSetup | None, state_dir: Path) -> Discovery | None:
    """Publish (through the outbox) every discovery config and an `OFF` per rule; remove what went.

    `setup` None (discovery off) removes whatever an earlier run announced. Returns the
    Discovery when on.
    """
    path = state_dir / STATE_FILE
    try:
        before = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as err:
        logger.warning("cannot read %s (%s); stale Home Assistant entities may stay", path, err)
        before = {}
    discovery = Discovery(topics, setup) if setup is not None else None
    configs = discovery.configs() if discovery is not None else {}
    states = discovery.state_topics() if discovery is not None else []
    gone = [t for t in before.get("configs", []) if t not in configs]
    gone += [t for t in before.get("states", []) if t not in states]
    messages = [_message(t, b"") for t in gone]
    messages += [_message(t, json.dumps(c, separators=(",", ":")).encode()) for t, c in configs.items()]
    if discovery is not None:
        # Nothing is open when delivery starts: a box that died with an incident open must not
        # leave its sensor ON for ever.
        messages += [
            _message(discovery.topics.rule_state(r.camera, r.rule), b"OFF", camera=r.camera)
            for rules in discovery.setup.cameras.values()
            for r in rules
            if r.kind != COUNT_KIND and not r.instant
        ]
    if messages:
        outbox.put_many(messages)
    if gone:
        logger.info("Home Assistant: removed %d entities or states no longer in the config", len(gone))
    if configs:
        logger.info(
            "Home Assistant: announced %d entities under %s/", len(configs), setup.prefix if setup else ""
        )
    _write_state(path, {"configs": sorted(configs), "states": sorted(states)} if configs else None)
    return discovery


def _write_state(path: Path, state: dict[str, list[str]] | None) -> None:
    try:
        if state is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=1)
        os.replace(tmp, path)
    except OSError as err:
        logger.warning("cannot write %s (%s); a later config change may leave stale entities", path, err)


class HomeAssistantSink:
    """`EventSink` in front of the outbox sink: after each event, its rule's state and snapshot."""

    def __init__(self, inner: OutboxSink, topics: Topics, setup: HaSetup) -> None:
        self._inner = inner
        self._topics = topics
        self._open: dict[tuple[str, str], set[str]] = {}
        self.reconfigure(setup)

    def reconfigure(self, setup: HaSetup | None) -> None:
        """A reloaded config: the rules to follow (None: discovery switched off, follow none);
        incidents of rules that stay keep counting."""
        self._active = setup is not None
        rules = {(r.camera, r.rule): r for rs in setup.cameras.values() for r in rs} if setup else {}
        self._rules = rules
        self._open = {k: v for k, v in self._open.items() if k in rules}

    def open_incidents(self, camera: str, rule: str) -> int:
        return len(self._open.get((camera, rule), ()))

    def emit(self, event: Event, snapshot_jpeg: bytes | None) -> None:
        self._inner.emit(event, snapshot_jpeg)
        if not self._active:
            return
        messages = []
        if snapshot_jpeg is not None:
            messages.append(
                _message(
                    self._topics.latest_snapshot(event.camera), snapshot_jpeg, event.severity, event.camera
                )
            )
        rule = self._rules.get((event.camera, event.rule))
        if rule is not None and rule.kind != COUNT_KIND:
            messages += self._state(rule, event)
        if messages:
            self._inner.store(messages)  # behind the event, and held in memory when the disk is full

    def _state(self, rule: HaRule, event: Event) -> list[OutboxMessage]:
        topic = self._topics.rule_state(rule.camera, rule.rule)
        if rule.instant:
            if event.phase != "start":
                return []
            return [
                OutboxMessage(topic, b"ON", camera=rule.camera, severity=event.severity, qos=1, retain=False)
            ]
        key = (rule.camera, rule.rule)
        was_on = bool(self._open.get(key))
        if event.phase == "end":
            self._open.get(key, set()).discard(event.event_id)
        else:  # start, or an update of an incident opened before a reload
            self._open.setdefault(key, set()).add(event.event_id)
        is_on = bool(self._open.get(key))
        if is_on == was_on:
            return []
        return [_message(topic, b"ON" if is_on else b"OFF", event.severity, rule.camera)]

    # count aggregates pass through to the outbox sink (the count sensor reads their topic)

    def emit_count(self, report: CountReport) -> None:
        self._inner.emit_count(report)

    def checkpoint_count(self, report: CountReport) -> None:
        self._inner.checkpoint_count(report)

    def resume_count(self, camera: str, rule: str, interval_start_ts: float) -> Mapping[str, Any] | None:
        return self._inner.resume_count(camera, rule, interval_start_ts)

    def close(self) -> None:
        self._inner.close()


def rules_of(
    cameras: Iterable[tuple[str, Iterable[tuple[str, str]]]], instant_kinds: Iterable[str]
) -> dict[str, list[HaRule]]:
    """`{camera: [HaRule…]}` from (camera, [(rule id, kind)…]) pairs."""
    instant = set(instant_kinds)
    return {cam: [HaRule(cam, rid, kind, kind in instant) for rid, kind in rules] for cam, rules in cameras}
