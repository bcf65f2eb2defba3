"""Whether the box waits for receipts: `mqtt.receipts` and what the platform has announced.

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

from edge_agent.contract.receipts import PlatformStatus, ReceiptError, parse_platform_status
from edge_agent.core.files import FILE_MODE

logger = logging.getLogger(__name__)


class PlatformWatch:
    """The receipts mode in force and the platform's last announcement."""

    def __init__(self, mode: str, memory: Path | None) -> None:
        if mode not in ("auto", "required", "off"):
            raise ValueError(f"mqtt.receipts must be auto, required or off, got {mode!r}")
        self.mode = mode
        self._memory = memory
        self.announced = self._remembered()
        self.last: PlatformStatus | None = None
        self.bad_statuses = 0

    @property
    def waiting(self) -> bool:
        """True when items wait for a receipt after their PUBACK."""
        return self.mode == "required" or (self.mode == "auto" and self.announced)

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
        if status.receipts != self.announced:
            self.announced = status.receipts
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
            "platform": None if self.last is None else self.last.state,
        }

    def _remembered(self) -> bool:
        if self._memory is None:
            return False
        try:
            data = json.loads(self._memory.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("receipts") is True

    def _remember(self, status: PlatformStatus) -> None:
        if self._memory is None:
            return
        tmp = self._memory.with_name(f".{self._memory.name}.tmp")
        text = json.dumps({"receipts": status.receipts, "since": status.since})
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
