"""Wires the durable outbox, the MQTT publisher and the outbox sink from a config.

Used by `replay --publish` and the daemon, so both deliver exactly the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.config import Config, ConfigError, Problem
from edge_agent.outbox import Outbox
from edge_agent.publish.mqtt import MqttPublisher
from edge_agent.publish.outbox_sink import OutboxSink
from edge_agent.publish.topics import Topics


class Delivery:
    """The outbox, its publisher and the sink the pipeline writes into; `close()` ends all three."""

    def __init__(self, cfg: Config, stats_provider: Callable[[], Mapping[str, Any]] | None = None) -> None:
        if cfg.mqtt is None:
            raise ConfigError([Problem("mqtt", "publishing needs an mqtt section (url, credentials, tls)")])
        Path(cfg.outbox.path).parent.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_mb)
        self.topics = Topics(cfg.mqtt.topic_prefix, cfg.site.id, cfg.device.id)
        self.sink = OutboxSink(self.outbox, self.topics)
        self.publisher = MqttPublisher.from_config(cfg, self.outbox, stats_provider=stats_provider)

    def start(self) -> None:
        self.publisher.start()

    def wait_drained(self, timeout_s: float) -> int:
        return self.publisher.wait_drained(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        try:
            self.publisher.stop(timeout_s)
        finally:
            self.outbox.close()
