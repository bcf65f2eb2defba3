"""The platform side of remote operations: sign a command, send it to one box, wait for its result.

Used by `edge-agent command` and by the console's device page alike. Only `contract` and
`core` are imported here, no web framework or database: a shell on the town's server is
enough to change a zone on a box. The private key (`fleet.private_key_file`) never leaves
this machine; the boxes hold the public one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.contract.commands import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    Command,
    CommandError,
    CommandResult,
    new_command,
    parse_result,
)
from edge_agent.contract.mqtt_client import (
    ClientSettings,
    ClientSetupError,
    make_client,
    new_client_id,
    parse_broker_url,
    ssl_reason,
)
from edge_agent.contract.topics import Topics
from edge_agent.core.config import redact

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0


class FleetConfig(BaseModel):
    """`fleet:` in the console's config: signing commands for the boxes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    private_key_file: str = Field(description="the town's Ed25519 private key (PEM, mode 0600)")
    ttl_s: float = Field(
        DEFAULT_TTL_S, gt=0, le=MAX_TTL_S, description="how long a command waits for a box that is away"
    )
    timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="how long `edge-agent command` waits for the result (config-set: plus confirm_s)",
    )


class FleetError(Exception):
    """The command could not be sent (broker unreachable, login or ACL refused); one line."""


@dataclass(frozen=True)
class Target:
    prefix: str
    site: str
    device: str

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix, self.site, self.device)


def parse_device(text: str, prefix: str) -> Target:
    """`SITE/DEVICE` -> a target; ValueError naming what is wrong."""
    site, sep, device = text.partition("/")
    if not sep or not site or not device:
        raise ValueError(f"--device: expected SITE/DEVICE, got {text!r}")
    target = Target(prefix, site, device)
    target.topics  # noqa: B018  # illegal ids raise TopicError (a ValueError) here
    return target


class _Waiter:
    """paho callbacks of one send: connected, subscribed, published, the result."""

    def __init__(self, command_id: str) -> None:
        self.command_id = command_id
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.published = threading.Event()
        self.answered = threading.Event()
        self.refusal: str | None = None
        self.result: CommandResult | None = None

    def on_connect(self, c: paho.Client, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
        if rc.is_failure:
            self.refusal = f"the broker refused the login: {rc}"
        self.connected.set()

    def on_subscribe(self, c: paho.Client, u: Any, mid: int, rcs: list[ReasonCode], p: Any) -> None:
        if any(rc.is_failure for rc in rcs):
            self.refusal = "the broker refused the subscription to the results (check the ACL)"
        self.subscribed.set()

    def on_publish(self, c: paho.Client, u: Any, mid: int, rc: ReasonCode, p: Any) -> None:
        if rc.is_failure:  # MQTT 5 tells; MQTT 3.1.1 acknowledges a refused publish anyway
            self.refusal = f"the broker refused the command: {rc} (check the ACL)"
        self.published.set()

    def on_message(self, c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        try:
            result = parse_result(bytes(msg.payload))
        except CommandError as err:
            logger.warning("a result on %s that cannot be read: %s", msg.topic, err)
            return
        if result.id == self.command_id:
            self.result = result
            self.answered.set()


def send_command(
    mqtt: ClientSettings,
    key: Ed25519PrivateKey,
    target: Target,
    action: str,
    args: dict[str, Any] | None = None,
    *,
    ttl_s: float = DEFAULT_TTL_S,
    timeout_s: float = 30.0,
    command: Command | None = None,
) -> tuple[Command, CommandResult | None]:
    """Sign and send one command; the command and its result (None: no result within `timeout_s`).

    `command`: send this one, already signed, instead (the console stores it before it goes out).
    The result topic is subscribed before the command goes out, so a fast box cannot answer
    before anyone listens. FleetError when the broker cannot be reached or refuses us.
    """
    topics = target.topics
    cmd = command or new_command(target.site, target.device, action, args, ttl_s).signed_with(key)
    waiter = _Waiter(cmd.id)
    try:
        client = make_client(mqtt, new_client_id("eagleeye-command"))
    except ClientSetupError as err:
        raise FleetError(str(err)) from err
    client.on_connect = waiter.on_connect
    client.on_subscribe = waiter.on_subscribe
    client.on_publish = waiter.on_publish
    client.on_message = waiter.on_message
    host, port, _, _, _ = parse_broker_url(mqtt.url)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as err:
        raise FleetError(f"cannot reach the MQTT broker {redact(mqtt.url)}: {ssl_reason(err)}") from err
    client.loop_start()
    try:
        if not waiter.connected.wait(CONNECT_TIMEOUT_S):
            raise FleetError(f"the MQTT broker {redact(mqtt.url)} did not answer the login")
        if waiter.refusal is None:
            client.subscribe(topics.command_result(action), qos=1)
            if not waiter.subscribed.wait(CONNECT_TIMEOUT_S):
                raise FleetError("the broker did not confirm the subscription to the results")
        if waiter.refusal is None:
            client.publish(topics.command(action), cmd.payload(), qos=1)
            if not waiter.published.wait(CONNECT_TIMEOUT_S):
                raise FleetError("the broker did not acknowledge the command")
        if waiter.refusal is not None:
            raise FleetError(waiter.refusal)
        logger.info("command %s (%s) sent to %s/%s", cmd.id, action, target.site, target.device)
        waiter.answered.wait(timeout_s)
        return cmd, waiter.result
    finally:
        client.disconnect()
        client.loop_stop()
