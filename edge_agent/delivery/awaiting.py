"""Items the broker has acknowledged, waiting for the platform's receipt.

Owned by the publisher's network thread (no lock; the counters are plain ints
read by the stats). A PUBACK only says the broker holds a message, in memory
until its next autosave: a broker killed before that loses it. So an event
phase, and the snapshot published before it, stay in the outbox after their
PUBACK until a receipt (`contract/receipts.py`) says the platform committed
them.

When the oldest item has waited `timeout_s` since its PUBACK the publisher sends
everything not yet receipted again, from the oldest, in order (the platform
removes the duplicates by `event_id`, phase and `ts`); each such pass without a
receipt in between doubles the wait, up to `MAX_TIMEOUT_FACTOR` times
`timeout_s`, so a platform that does not answer does not make the broker queue
the same backlog again and again (and none is made while the platform says it
is offline: `platform.py`). A receipt, or a platform that announces itself
online, starts the wait over.

Only what a receipt can name waits: event phases and the pictures published
before them (the snapshot, a left object's owner crop), and clip chunks when the
platform announced clip receipts (`clip_receipts: true`: one `{"event_id", "clip":
true}` settles every chunk of that clip). Without that announcement chunks leave
on their PUBACK (a platform that never sends clip receipts would get them again
for ever), as do counts, discovery configs and statuses.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from edge_agent.contract.receipts import Receipt

MAX_TIMEOUT_FACTOR = 8  # the resend wait doubles up to this many times receipt_timeout_s
LATENCIES_KEPT = 10_000  # PUBACK-to-receipt times kept for the benchmark, the newest


@dataclass(frozen=True)
class ReceiptKey:
    """What a receipt must name to settle one outbox item."""

    event_id: str
    phase: str | None  # None: a snapshot, settled with the event phase published after it
    ts: str | None


CLIP = "clip"  # the phase of a clip chunk's key: settled by the clip receipt of its event


def receipt_key(topic: str, payload: bytes, clips: bool = False) -> ReceiptKey | None:
    """The key of an outbox item, or None for an item that leaves on its PUBACK.

    `clips`: the platform sends clip receipts, so clip chunks wait for theirs."""
    levels = topic.split("/")
    if len(levels) == 7 and levels[4] == "clips":
        return ReceiptKey(levels[5], CLIP, None) if clips else None
    if levels[4:5] == ["snapshots"] and (len(levels) == 6 or (len(levels) == 7 and levels[6] == "owner")):
        return ReceiptKey(levels[5], None, None)
    if len(levels) == 7 and levels[4] == "events":
        try:
            event = json.loads(payload)
            return ReceiptKey(str(event["event_id"]), str(event["phase"]), str(event["ts"]))
        except (ValueError, KeyError, TypeError):
            return None  # not an event the platform can name: the PUBACK is all there is
    return None


@dataclass
class _Pending:
    key: ReceiptKey
    acked_at: float | None = None  # monotonic time of the PUBACK; None while (re)sending


class AwaitingReceipts:
    """Outbox ids sent and keyed, their PUBACK times, and the resend schedule."""

    def __init__(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"receipt timeout must be > 0, got {timeout_s}")
        self.timeout_s = timeout_s
        self._wait_s = timeout_s
        self._items: dict[int, _Pending] = {}
        self._by_event: dict[str, set[int]] = {}
        self.resends = 0  # items sent again for want of a receipt
        self.resend_passes = 0
        self.receipted = 0
        self.unknown_receipts = 0
        self.latencies_s: deque[float] = deque(maxlen=LATENCIES_KEPT)  # PUBACK -> receipt

    def __len__(self) -> int:
        return sum(1 for p in self._items.values() if p.acked_at is not None)

    def sent(self, item_id: int, key: ReceiptKey) -> None:
        """The item went to the broker (again): its wait starts at its next PUBACK."""
        pending = self._items.get(item_id)
        if pending is None:
            self._items[item_id] = _Pending(key)
            self._by_event.setdefault(key.event_id, set()).add(item_id)
        else:
            pending.acked_at = None

    def known(self, item_id: int) -> bool:
        return item_id in self._items

    def pubacked(self, item_id: int, now: float | None = None) -> bool:
        """The broker has it; True when it must now wait for its receipt, False when it is settled."""
        pending = self._items.get(item_id)
        if pending is None:
            return False
        pending.acked_at = time.monotonic() if now is None else now
        return True

    def receipt(self, receipts: Iterable[Receipt]) -> list[int]:
        """The ids the receipts settle: an event phase and the snapshots of its event sent
        before it; a clip receipt, every chunk of that clip."""
        settled: set[int] = set()
        for r in receipts:
            ids = self._by_event.get(r.event_id, set())
            if r.clip:
                hits = [i for i in ids if self._items[i].key.phase == CLIP]
            else:
                hits = [i for i in ids if _names(r, self._items[i].key)]
                if hits:
                    hits += [i for i in ids if self._items[i].key.phase is None and i < max(hits)]
            if not hits:
                self.unknown_receipts += 1
                continue
            now = time.monotonic()
            for item_id in set(hits):
                acked_at = self._items[item_id].acked_at
                if acked_at is not None:
                    self.latencies_s.append(now - acked_at)
                # One still in flight is settled too: its PUBACK then finds nothing to wait for.
                self._forget(item_id)
                settled.add(item_id)
            self.receipted += len(set(hits))
            self._wait_s = self.timeout_s
        return sorted(settled)

    def forget(self, item_ids: Iterable[int]) -> None:
        """Items gone from the outbox otherwise (dropped by the size cap, moved aside)."""
        for item_id in item_ids:
            self._forget(item_id)

    def _forget(self, item_id: int) -> None:
        pending = self._items.pop(item_id, None)
        if pending is None:
            return
        ids = self._by_event.get(pending.key.event_id)
        if ids is not None:
            ids.discard(item_id)
            if not ids:
                del self._by_event[pending.key.event_id]

    def oldest_acked_at(self) -> float | None:
        times = [p.acked_at for p in self._items.values() if p.acked_at is not None]
        return min(times) if times else None

    def due(self, now: float | None = None) -> bool:
        """True when the oldest item has waited longer than the current wait: send again."""
        oldest = self.oldest_acked_at()
        if oldest is None:
            return False
        return (time.monotonic() if now is None else now) - oldest >= self._wait_s

    def resend_all(self) -> list[int]:
        """Every waiting item is to be sent again; the next wait is longer. Returns their ids."""
        ids = sorted(i for i, p in self._items.items() if p.acked_at is not None)
        for i in ids:
            self._items[i].acked_at = None
        self.resends += len(ids)
        self.resend_passes += 1
        self._wait_s = min(self._wait_s * 2, self.timeout_s * MAX_TIMEOUT_FACTOR)
        return ids

    def platform_online(self) -> None:
        """A platform (re)announced itself: the wait starts over at its shortest."""
        self._wait_s = self.timeout_s

    def waiting_ids(self) -> list[int]:
        return sorted(i for i, p in self._items.items() if p.acked_at is not None)

    def counters(self, now: float | None = None) -> dict[str, object]:
        oldest = self.oldest_acked_at()
        t = time.monotonic() if now is None else now
        return {
            "awaiting_receipt": len(self),
            "oldest_awaiting_s": None if oldest is None else round(t - oldest, 3),
            "resends": self.resends,
            "receipted": self.receipted,
        }


def _key3(key: ReceiptKey) -> tuple[str, str, str]:
    return key.event_id, key.phase or "", key.ts or ""


def _names(receipt: Receipt, key: ReceiptKey) -> bool:
    """Whether an event phase's receipt names this item (a phase of its event, not a picture or chunk)."""
    return key.phase not in (None, CLIP) and receipt.covers(*_key3(key))
