"""Wires the durable outbox, the MQTT publisher and the outbox sink from a config.

Built by app/wiring.py for `replay --publish` and the daemon, so both deliver exactly the same way.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edge_agent.contract.status import announcement
from edge_agent.contract.topics import Topics
from edge_agent.core.config import Config, ConfigError, Problem
from edge_agent.core.files import private_dir
from edge_agent.core.sink import EventSink
from edge_agent.delivery.count_store import CountStore
from edge_agent.delivery.homeassistant import HaSetup, HomeAssistantSink, announce
from edge_agent.delivery.jsonl import FanoutSink
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from edge_agent.delivery.status_board import StatusBoard
from edge_agent.delivery.webhook import WebhookPoster, WebhookSink

logger = logging.getLogger(__name__)


class Delivery:
    """The outbox, its publisher, the webhook and the sink the pipeline writes into; `close()` ends all.

    MQTT (`mqtt`), the webhook (`webhook`) or both. Without `mqtt` the MQTT outbox is still
    opened (the sink's memory queue and the count store live beside it) but nothing is put in
    it: events go to the webhook only, counts and Home Assistant discovery are MQTT's.
    """

    def __init__(
        self,
        cfg: Config,
        topics: Topics,
        homeassistant: HaSetup | None = None,
    ) -> None:
        if cfg.mqtt is None and cfg.webhook is None:
            raise ConfigError(
                [Problem("mqtt", "publishing needs an mqtt section (url, credentials, tls) or a webhook")]
            )
        private_dir(Path(cfg.outbox.path).parent)
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_mb)
        self.topics = topics
        # count-rule state beside the outbox: outbox.sqlite -> outbox.counts.sqlite
        out = Path(cfg.outbox.path)
        self.counts = CountStore(out.with_name(out.stem + ".counts" + (out.suffix or ".sqlite")))
        self.outbox_sink = OutboxSink(self.outbox, self.topics, self.counts)
        self.homeassistant = homeassistant
        self._state_dir = Path(cfg.outbox.path).parent
        if cfg.mqtt is None:
            self.homeassistant = homeassistant = None
        self.ha_sink = HomeAssistantSink(self.outbox_sink, topics, homeassistant) if homeassistant else None
        self.sink: EventSink = self.ha_sink or self.outbox_sink
        self.board = StatusBoard()  # the agent writes camera states and stats; the publisher sends them
        self.publisher: MqttPublisher | None = None
        if cfg.mqtt is not None:
            self.publisher = MqttPublisher(
                cfg.mqtt,
                self.outbox,
                topics,
                board=self.board,
                outbox_extra=self.outbox_sink.counters,
                announce=announcement(cfg),
            )
        self.webhook: WebhookPoster | None = None
        self.webhook_outbox: Outbox | None = None
        if cfg.webhook is not None:
            # Beside MQTT, in an outbox of its own: one sink's backlog never holds up the other.
            self.webhook_outbox = Outbox(
                out.with_name(out.stem + ".webhook" + (out.suffix or ".sqlite")), cfg.outbox.max_mb
            )
            self.webhook = WebhookPoster(cfg.webhook, self.webhook_outbox)
            webhook_sink = WebhookSink(self.webhook_outbox)
            self.sink = webhook_sink if self.publisher is None else FanoutSink(self.sink, webhook_sink)

    def start(self) -> None:
        # Discovery first (or the removal of an earlier run's entities): Home Assistant knows
        # the sensors before their first state arrives.
        if self.publisher is not None:
            announce(self.outbox, self.topics, self.homeassistant, self._state_dir)
            self.publisher.start()
        if self.webhook is not None:
            self.webhook.start()

    def reconfigure(self, homeassistant: HaSetup | None) -> None:
        """A reloaded config: announce its entities, remove those that went (when discovery was on)."""
        if self.ha_sink is None:
            if homeassistant is not None:
                logger.warning(
                    "reload: Home Assistant discovery switched on takes effect at the next restart"
                )
            return
        announce(self.outbox, self.topics, homeassistant, self._state_dir)
        self.ha_sink.reconfigure(homeassistant)
        self.homeassistant = homeassistant

    def wait_drained(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        left = self.publisher.wait_drained(timeout_s) if self.publisher is not None else 0
        if self.webhook is not None:
            left += self.webhook.wait_drained(max(0.0, deadline - time.monotonic()))
        return left

    def close(self, timeout_s: float = 5.0) -> None:
        try:
            self.sink.close()
            if self.publisher is not None:
                self.publisher.stop(timeout_s)
            if self.webhook is not None:
                self.webhook.stop(timeout_s)
        finally:
            self.outbox.close()
            self.counts.close()
            if self.webhook_outbox is not None:
                self.webhook_outbox.close()
