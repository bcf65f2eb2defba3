"""The box side of remote operations: take signed commands from the platform, answer each one.

A paho client of its own, beside the publisher (which only drains the outbox), with a
persistent session and a QoS 1 subscription to `{base}/commands/+`: a command sent while
the box is off or cut off waits at the broker and runs when it comes back, if still
unexpired. Each command is checked before anything runs, in this order: the schema, the
Ed25519 signature against `commands.public_key_file` (so nothing unsigned can fill the
store of seen ids), the target (site, device and the topic's action), the expiry, and the
id (seen ids are kept on disk until they expire: neither a replay nor a broker's second
delivery runs twice). Commands run one at a time on a worker thread, never on paho's, so
a config-set's confirmation window does not stall the connection. Every command and result
is logged with its id and action; arguments and data never are (a config may hold a secret).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.contract.commands import Command, CommandError, CommandResult, load_public_key, parse_command
from edge_agent.contract.mqtt_client import ClientSetupError, make_client, parse_broker_url
from edge_agent.contract.topics import Topics
from edge_agent.core.config import MqttConfig, redact
from edge_agent.core.files import private_dir, write_private

logger = logging.getLogger(__name__)

QUEUE_SIZE = 64
SESSION_EXPIRY_S = 7 * 86400  # MQTT 5: as long as a command may live (contract MAX_TTL_S)
Handler = Callable[[Command], CommandResult]


class SeenIds:
    """Ids of commands already taken, each kept until its expiry, in a small JSON file.

    An expired command is refused anyway, so the file never holds more than the commands
    of the last few days.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ids: dict[str, float] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._ids = {str(k): float(v) for k, v in data.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError, TypeError) as err:
            # refusing every command would lock the town out; expiry still bounds a replay
            logger.error("cannot read the seen command ids %s (%s); starting an empty list", path, err)

    def __contains__(self, command_id: str) -> bool:
        return command_id in self._ids

    def add(self, command_id: str, expires_ts: float, now: float) -> None:
        self._ids = {k: v for k, v in self._ids.items() if v > now}
        self._ids[command_id] = expires_ts
        private_dir(self.path.parent)
        write_private(self.path, json.dumps(self._ids, sort_keys=True).encode())


class CommandListener:
    """Subscribes to this box's commands, checks each, runs it through `handler`, publishes the result."""

    def __init__(
        self,
        mqtt: MqttConfig,
        topics: Topics,
        public_key_file: str,
        state_dir: Path,
        handler: Handler,
    ) -> None:
        self._mqtt = mqtt
        self._topics = topics
        self._key_file = public_key_file
        self._key = load_public_key(public_key_file)  # KeyFileError at start: a box that cannot check
        self._handler = handler
        self.seen = SeenIds(state_dir / "commands-seen.json")
        base_id = mqtt.client_id or f"edge-agent-{topics.site}-{topics.device}"
        self._client_id = f"{base_id}-commands"[:128]
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(QUEUE_SIZE)
        self._client: paho.Client | None = None
        self._worker: threading.Thread | None = None
        self.subscribed = threading.Event()
        self.pending: list[CommandResult] = []  # results to send once connected (an interrupted trial)
        self.taken = 0
        self.refused = 0

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        try:
            client = make_client(self._mqtt, self._client_id, persistent=True)
        except ClientSetupError as err:
            logger.error("remote operations: %s; no command will be taken", err)
            return
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 60)
        host, port, _, _, _ = parse_broker_url(self._mqtt.url)
        kwargs: dict[str, Any] = {}
        if self._mqtt.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            kwargs = {"clean_start": False, "properties": props}
        client.connect_async(host, port, keepalive=self._mqtt.keepalive_s, **kwargs)
        self._client = client
        self._worker = threading.Thread(target=self._work, name="commands", daemon=True)
        self._worker.start()
        client.loop_start()
        logger.info("remote operations: commands checked against %s", self._key_file)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout_s)

    # --- paho callbacks (paho's thread) --------------------------------------------

    def _on_connect(self, client: paho.Client, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            logger.warning(
                "remote operations: broker %s refused the connection: %s", redact(self._mqtt.url), rc
            )
            return
        client.subscribe(self._topics.commands_filter, qos=1)
        while self.pending:
            result = self.pending.pop(0)
            client.publish(self._topics.command_result(result.action), result.payload(), qos=1)
        self.subscribed.set()

    def _on_disconnect(self, client: paho.Client, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self.subscribed.clear()

    def _on_message(self, client: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        try:
            self._queue.put_nowait((msg.topic, bytes(msg.payload)))
        except queue.Full:
            logger.warning(
                "remote operations: %d commands wait already; one on %s dropped", QUEUE_SIZE, msg.topic
            )

    # --- the worker -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            topic, payload = item
            try:
                result = self.take(topic, payload, time.time())
            except Exception:  # a bug in one action must not end remote operations
                logger.exception("remote operations: a command on %s failed", topic)
                continue
            if result is not None and self._client is not None:
                self._client.publish(self._topics.command_result(result.action), result.payload(), qos=1)

    def take(self, topic: str, payload: bytes, now: float) -> CommandResult | None:
        """Check one command and run it; its result, or None when it has no id to answer to."""
        action = topic.rsplit("/", 1)[-1]
        try:
            cmd = parse_command(payload)
        except CommandError as err:
            self.refused += 1
            logger.warning("command on %s refused: %s", topic, err)
            return None
        try:
            cmd.verify(self._key)
            if (cmd.site, cmd.device) != (self._topics.site, self._topics.device):
                raise CommandError(f"addressed to {cmd.site}/{cmd.device}, not this box")
            if cmd.action != action:
                raise CommandError(f"a {cmd.action} command sent on the topic of {action}")
            cmd.check_time(now)
            if cmd.id in self.seen:
                raise CommandError("replayed: a command with this id was already taken")
        except CommandError as err:
            self.refused += 1
            logger.warning("command %s (%s) refused: %s", cmd.id, cmd.action, err)
            return self.result(cmd, "refused", str(err))
        try:
            self.seen.add(cmd.id, cmd.expires_ts, now)
        except OSError as err:  # unrecorded, it could be replayed: not run
            self.refused += 1
            logger.error("command %s (%s) refused: cannot record its id: %s", cmd.id, cmd.action, err)
            return self.result(cmd, "refused", f"cannot record the command's id: {err.strerror or err}")
        self.taken += 1
        logger.info("command %s (%s, issued %s): running", cmd.id, cmd.action, cmd.issued_at)
        try:
            result = self._handler(cmd)
        except Exception as err:  # a bug in one action: answered and logged, the listener goes on
            logger.exception("command %s (%s) failed", cmd.id, cmd.action)
            return self.result(cmd, "refused", f"the box could not run it: {type(err).__name__}: {err}")
        log = logger.info if result.ok else logger.warning
        log("command %s (%s): %s: %s", cmd.id, cmd.action, result.state, redact(result.message))
        return result

    def result(
        self, cmd: Command, state: str, message: str, data: dict[str, Any] | None = None
    ) -> CommandResult:
        return CommandResult(
            cmd.id, cmd.action, self._topics.site, self._topics.device, state, message, data or {}
        )
