"""Whether the box waits for receipts (`mqtt.receipts`, what the platform announced), and the desk
that takes the platform's messages for the publisher.

`required` always waits, `off` never (an item leaves on its PUBACK), `auto` waits
from the first time a platform status with `receipts: true` is seen. That
sighting is written beside the outbox, so a box restarted while the platform is
away (or after the broker lost the retained status) keeps waiting; an
announcement with `receipts: false` turns it off again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from edge_agent.contract.receipts import PlatformStatus, ReceiptError, parse_platform_status, parse_receipts
from edge_agent.contract.topics import Topics
from edge_agent.core.config import MqttConfig
from edge_agent.core.files import FILE_MODE
from edge_agent.delivery.awaiting import AwaitingReceipts, receipt_key
from edge_agent.delivery.outbox import Outbox, OutboxItem

logger = logging.getLogger(__name__)


class PlatformWatch:
    """The receipts mode in force and the platform's last announcement."""

    def __init__(self, mode: str, memory: Path | None) -> None:
        if mode not in ("auto", "required", "off"):
            raise ValueError(f"mqtt.receipts must be auto, required or off, got {mode!r}")
        self.mode = mode
        self._memory = memory
        self.announced, self.clips_announced = self._remembered()
        self.last: PlatformStatus | None = None
        self.bad_statuses = 0

    @property
    def waiting(self) -> bool:
        """True when items wait for a receipt after their PUBACK."""
        return self.mode == "required" or (self.mode == "auto" and self.announced)

    @property
    def clips_waiting(self) -> bool:
        """True when clip chunks wait for a clip receipt too: the platform announced them."""
        return self.waiting and self.clips_announced

    @property
    def offline(self) -> bool:
        """True when the platform's last word was `offline` (its Last Will or a clean stop)."""
        return self.last is not None and self.last.state == "offline"

    @property
    def listening(self) -> bool:
        """True when the publisher subscribes to receipts and the platform status."""
        return self.mode != "off"

    def on_status(self, payload: bytes) -> bool:
        """A platform status arrived; True when it is a platform newly online (a fresh connection)."""
        if not payload:
            return False  # a retained status cleared
        try:
            status = parse_platform_status(payload)
        except ReceiptError as err:
            self.bad_statuses += 1
            if self.bad_statuses == 1:
                logger.warning("ignored a platform status that breaks its schema: %s", err)
            return False
        previous, self.last = self.last, status
        if (status.receipts, status.clip_receipts) != (self.announced, self.clips_announced):
            self.announced, self.clips_announced = status.receipts, status.clip_receipts
            self._remember(status)
            if self.mode == "auto":
                logger.info(
                    "the platform %s receipts: events %s",
                    "sends" if status.receipts else "no longer sends",
                    "leave on their receipt" if status.receipts else "leave on the broker's PUBACK",
                )
        fresh = previous is None or previous.since != status.since or previous.state != status.state
        return status.state == "online" and fresh

    def counters(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "waiting": self.waiting,
            "clips_waiting": self.clips_waiting,
            "platform": None if self.last is None else self.last.state,
        }

    def _remembered(self) -> tuple[bool, bool]:
        """(receipts, clip receipts) as last announced, from the file beside the outbox."""
        if self._memory is None:
            return False, False
        try:
            data = json.loads(self._memory.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False, False
        if not isinstance(data, dict):
            return False, False
        return data.get("receipts") is True, data.get("clip_receipts") is True

    def _remember(self, status: PlatformStatus) -> None:
        if self._memory is None:
            return
        tmp = self._memory.with_name(f".{self._memory.name}.tmp")
        text = json.dumps(
            {"receipts": status.receipts, "clip_receipts": status.clip_receipts, "since": status.since}
        )
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._memory)
        except OSError as err:
            # Kept in memory for this run; the next announcement tries again.
            logger.warning(
                "cannot write %s (%s): the platform's receipts are remembered until a restart",
                self._memory,
                err.strerror or err,
            )
            with contextlib.suppress(OSError):
                tmp.unlink()


class ReceiptDesk:
    """The publisher's side of receipts: what to subscribe to, what waits, what a message settles.

    Owned by the publisher's network thread. `on_message` and `resend_due` return the
    outbox ids now settled and whether everything waiting must be sent again.
    """

    def __init__(self, cfg: MqttConfig, topics: Topics, outbox: Outbox) -> None:
        self._topics = topics
        self._outbox = outbox
        # What the platform announced (receipts or not) is kept beside the outbox.
        self.platform = PlatformWatch(cfg.receipts, Path(f"{outbox.path}.platform.json"))
        self.awaiting = AwaitingReceipts(cfg.receipt_timeout_s)
        self.bad_receipts = 0

    def subscriptions(self) -> list[tuple[str, int]]:
        if not self.platform.listening:
            return []
        return [(self._topics.receipts, 1), (self._topics.platform_status, 1)]

    def sent(self, item: OutboxItem) -> None:
        waiting = self.platform.waiting
        key = receipt_key(item.topic, item.payload, self.platform.clips_waiting) if waiting else None
        if key is not None:
            self.awaiting.sent(item.id, key)

    def pubacked(self, item_id: int) -> bool:
        """True when the item now waits for its receipt; False when its PUBACK settles it."""
        if self.platform.waiting and self.awaiting.pubacked(item_id):
            return True
        self.awaiting.forget([item_id])
        return False

    def on_message(self, topic: str, payload: bytes) -> tuple[list[int], bool]:
        """(ids settled by a receipt, True when everything waiting must be sent again now)."""
        if topic == self._topics.platform_status:
            if self.platform.on_status(payload) and self.platform.waiting:
                # A platform that connected afresh may have lost what the broker held for it.
                self.awaiting.platform_online()
                return [], self._resend("the platform is online again")
            return [], False
        if topic != self._topics.receipts:
            return [], False
        try:
            receipts = parse_receipts(payload)
        except ReceiptError as err:
            self.bad_receipts += 1
            if self.bad_receipts == 1:
                logger.warning("ignored a receipt that breaks its schema: %s", err)
            return [], False
        return self.awaiting.receipt(receipts), False

    def resend_due(self) -> bool:
        """True when the oldest item has waited too long: everything waiting goes again.

        Not while the platform says it is offline: the broker queues for it, and sending the
        backlog again each time would only fill that queue with copies. Its next `online`
        sends everything waiting at once (`on_message`).
        """
        if self.platform.offline or not self.awaiting.due():
            return False
        return self._resend(f"no receipt within {self.awaiting.timeout_s:g} s")

    def _resend(self, why: str) -> bool:
        ids = self.awaiting.resend_all()
        if not ids:
            return False
        present = self._outbox.present(ids)
        self.awaiting.forget(i for i in ids if i not in present)  # dropped by the size cap meanwhile
        logger.warning("%s: sending %d item(s) again, the oldest first", why, len(present))
        return True

    def counters(self) -> dict[str, object]:
        return {**self.platform.counters(), **self.awaiting.counters(), "bad_receipts": self.bad_receipts}
