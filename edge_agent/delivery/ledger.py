"""What the publisher knows about outbox items beyond the outbox: outcomes to write, suspects.

Owned by the publisher's network thread (no lock). Two jobs:

- **Outcomes not yet written.** An item's PUBACK (or its refusal) is recorded
  here first and written to the outbox in one go; when the disk refuses the
  write, it stays here and is written again once a second, and the item is not
  sent again meanwhile, across reconnects too, so a full disk does not become a
  storm of duplicates.
- **Poison suspects.** A connection lost soon after the oldest item in flight
  was sent gives that item a strike, and the next connection sends the items
  that were in flight one at a time (so the next strike falls on the item that
  broke it, and few are sent twice); after `POISON_STRIKES` strikes an item is
  moved to the outbox's dead letters. Refusals that name the item (paho's ValueError, an
  MQTT 5 reason code) move it at once: the verdict is about its content.
"""

from __future__ import annotations

import logging
import time

from edge_agent.delivery.outbox import Outbox, OutboxError

logger = logging.getLogger(__name__)

POISON_STRIKES = 3  # connections lost right after sending the same oldest item: then it is moved aside
POISON_LINGER_S = 5.0  # a connection lost this soon after the oldest item was sent counts a strike
RETRY_S = 1.0  # outcomes the disk refused are written again this often


class Ledger:
    """Outcomes waiting to be written, send times of items in flight, strikes of suspects."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        # outbox id -> None (acked) or (dead-letter reason, tries); never sent again
        self._settled: dict[int, tuple[str, int] | None] = {}
        self._retry_at = 0.0
        self._failing = False
        self._sent_at: dict[int, float] = {}  # outbox id -> monotonic send time, items in flight
        self._strikes: dict[int, int] = {}
        # Items up to this id are sent one at a time: they were in flight when a connection broke.
        self.careful_until: int | None = None
        self.dead_lettered = 0
        self.write_errors = 0

    @property
    def unwritten(self) -> int:
        return len(self._settled)

    def settled(self, item_id: int) -> bool:
        """True when the item's outcome is known (only not yet written): do not send it."""
        return item_id in self._settled

    def window(self, normal: int, cursor: int) -> int:
        if self.careful_until is not None and cursor > self.careful_until:
            self.careful_until = None  # passed it (the item itself was dropped or moved aside)
        return 1 if self.careful_until is not None else normal

    def _passed(self, item_id: int) -> None:
        if self.careful_until is not None and item_id >= self.careful_until:
            self.careful_until = None

    def sent(self, item_id: int) -> None:
        self._sent_at[item_id] = time.monotonic()

    def acked(self, item_ids: list[int]) -> None:
        for item_id in item_ids:
            self._sent_at.pop(item_id, None)
            self._strikes.pop(item_id, None)
            self._passed(item_id)
            self._settled[item_id] = None

    def refused(self, item_id: int, reason: str, tries: int = 1) -> None:
        self._sent_at.pop(item_id, None)
        self._passed(item_id)
        self._settled[item_id] = (reason, tries)

    def connection_lost(self, inflight: list[int], reason: str | None) -> None:
        """Blame the oldest item in flight if it was sent just before the connection went."""
        sent_at, self._sent_at = self._sent_at, {}
        if not inflight:
            return
        head = min(inflight)
        sent = sent_at.get(head)
        if sent is None or time.monotonic() - sent > POISON_LINGER_S:
            return
        strikes = self._strikes.get(head, 0) + 1
        self._strikes[head] = strikes
        last = max(inflight)
        self.careful_until = last if self.careful_until is None else max(self.careful_until, last)
        if strikes >= POISON_STRIKES:
            why = f"the MQTT broker closed the connection each time it was sent ({reason})"
            self.refused(head, why, strikes)

    def write(self, *, force: bool = False) -> bool:
        """Write the known outcomes; False when there was nothing to write or the disk refused."""
        if not self._settled:
            return False
        now = time.monotonic()
        if self._failing and not force and now < self._retry_at:
            return False
        acks = [i for i, dead in self._settled.items() if dead is None]
        try:
            if acks:
                self._outbox.ack_many(acks)
                for item_id in acks:
                    del self._settled[item_id]
            for item_id, dead in list(self._settled.items()):
                if dead is not None:
                    self._move_aside(item_id, *dead)
                    del self._settled[item_id]
        except OutboxError as err:
            self.write_errors += 1
            self._retry_at = now + RETRY_S
            if not self._failing:
                logger.error(
                    "%s; %d delivered item(s) are kept in memory and not sent again; retrying every %.0f s",
                    err,
                    len(self._settled),
                    RETRY_S,
                )
            self._failing = True
            return False
        if self._failing:
            logger.warning("the outbox takes acks again; every delivered item is removed")
        self._failing = False
        return True

    def _move_aside(self, item_id: int, reason: str, tries: int) -> None:
        if self._outbox.dead_letter(item_id, reason, tries):
            self.dead_lettered += 1
            # Once per item: the stats count them, the table keeps them for inspection.
            logger.error(
                "outbox item %d moved to the dead letters after %d tr%s: %s; the items behind it go on",
                item_id,
                tries,
                "y" if tries == 1 else "ies",
                reason,
            )
        self._strikes.pop(item_id, None)
