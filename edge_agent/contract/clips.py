"""Clips in chunks: how an event's MP4 is cut for the clips topic and put together again.

A clip travels as `clip.chunks` messages of at most `CHUNK_BYTES` on
`{prefix}/v1/{site}/{device}/clips/{event_id}/{index}`; the event's `clip` names their
count and the sha256 of their bytes joined in index order. Chunks and the event may come
in any order and more than once (at-least-once delivery). `ClipAssembler` is the
receiving side both the reference subscriber (`edge-agent listen`) and a platform can
use: it holds the chunks of each clip until the event's `clip` says what is complete,
joins them, checks the sha256 and hands back the bytes. It is bounded: at most
`max_pending` clips and `max_bytes` of chunks wait, the oldest going first (counted).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

CHUNK_BYTES = 256 * 1024  # the most one clip message carries
CONTENT_TYPE = "video/mp4"


def split_clip(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """`data` in pieces of at most `chunk_bytes`, in order (one piece for an empty clip)."""
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    if not data:
        yield b""
        return
    for start in range(0, len(data), chunk_bytes):
        yield data[start : start + chunk_bytes]


def chunk_count(size: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    return max(1, -(-size // chunk_bytes))


@dataclass(frozen=True)
class Assembled:
    """One clip whose chunks have all come: its bytes and whether they hash to the event's sha256."""

    event_id: str
    data: bytes
    ok: bool
    expected_sha256: str


@dataclass
class _Pending:
    chunks: dict[int, bytes] = field(default_factory=dict)
    expected: tuple[int, str] | None = None  # (chunks, sha256) from the event's clip

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks.values())


class ClipAssembler:
    def __init__(self, max_pending: int = 64, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()  # clips handed back already (re-sends)
        self._bytes = 0
        self.dropped = 0  # clips given up for room
        self.duplicates = 0

    def add_chunk(self, event_id: str, index: int, data: bytes) -> Assembled | None:
        """Take chunk `index` of `event_id`'s clip; the clip once complete and described."""
        if event_id in self._done:
            self.duplicates += 1
            return None
        if index < 0:
            raise ValueError(f"clip chunk index must be 0 or more, got {index}")
        pending = self._pending.setdefault(event_id, _Pending())
        old = pending.chunks.get(index)
        if old is not None:
            self.duplicates += 1
            self._bytes -= len(old)
        pending.chunks[index] = data
        self._bytes += len(data)
        self._make_room(keep=event_id)
        return self._complete(event_id)

    def add_event(self, event: Mapping[str, Any]) -> Assembled | None:
        """Take an event; its `clip` (if any) says how many chunks make the clip and their sha256."""
        clip = event.get("clip")
        if not isinstance(clip, Mapping):
            return None
        event_id = str(event["event_id"])
        if event_id in self._done:
            return None
        pending = self._pending.setdefault(event_id, _Pending())
        pending.expected = (int(clip["chunks"]), str(clip["sha256"]))
        self._make_room(keep=event_id)
        return self._complete(event_id)

    def _complete(self, event_id: str) -> Assembled | None:
        pending = self._pending.get(event_id)
        if pending is None or pending.expected is None:
            return None
        count, sha = pending.expected
        if any(i not in pending.chunks for i in range(count)):
            return None
        data = b"".join(pending.chunks[i] for i in range(count))
        del self._pending[event_id]
        self._bytes -= pending.size
        self._done[event_id] = None
        if len(self._done) > 100_000:
            self._done.popitem(last=False)
        return Assembled(event_id, data, hashlib.sha256(data).hexdigest() == sha, sha)

    def _make_room(self, keep: str) -> None:
        while self._pending and (len(self._pending) > self.max_pending or self._bytes > self.max_bytes):
            oldest = next(iter(self._pending))
            if oldest == keep and len(self._pending) == 1:
                return
            if oldest == keep:
                self._pending.move_to_end(keep)
                continue
            gone = self._pending.pop(oldest)
            self._bytes -= gone.size
            self.dropped += 1

    @property
    def waiting(self) -> int:
        """Clips with some chunks or their event here, not yet complete."""
        return len(self._pending)
