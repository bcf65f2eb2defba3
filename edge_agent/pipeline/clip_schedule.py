"""Live clips wait for their video: cut once the recorder has passed the window's end.

In the live agent the clip of an incident runs `post_s` past the alert, so it cannot be
cut when the incident starts. The `start` phase goes out at once without a clip; the
incident's clip waits here until its recorder holds video past the end of the window
(or `GIVE_UP_S` after that end: a camera that went away), is cut from what is there, and
rides with the incident's next phase:

- the incident is still open: an `update` phase carrying the clip;
- it ended meanwhile: its `end` phase was held back here and goes out with the clip
  (at most `post_s` plus a moment late: the town sees one `end`, with the video).

A new incident under the same rule and key sends a held `end` out first, so phases of
one incident never interleave with the next one's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.pipeline.events import EventDraft

GIVE_UP_S = 30.0  # after the window's end: cut what the ring holds, or send without a clip


@dataclass
class PendingClip:
    event_id: str
    start: EventDraft  # the incident's start phase
    parts: list[tuple[float, float]]
    offset: float  # wall minus media time when it started: its phases keep the start's ids
    held_end: EventDraft | None = None

    @property
    def end_s(self) -> float:
        return self.parts[-1][1]

    @property
    def incident(self) -> tuple[str, str]:
        return self.start.rule, self.start.key


class ClipSchedule:
    """The incidents of one camera whose clip is still to be cut, in the order they started."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingClip] = {}
        self.gave_up = 0  # windows cut short because the recorder never passed their end

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, pending: PendingClip) -> None:
        self._pending[pending.event_id] = pending

    def hold_end(self, event_id: str, draft: EventDraft) -> bool:
        """An `end` phase of an incident whose clip is pending: kept (True) to go with it."""
        pending = self._pending.get(event_id)
        if pending is None:
            return False
        pending.held_end = draft
        return True

    def ended_before(self, draft: EventDraft) -> list[PendingClip]:
        """A new incident starts: the held ends of earlier ones under its rule and key, taken out."""
        key = (draft.rule, draft.key)
        out = [p for p in self._pending.values() if p.incident == key and p.held_end is not None]
        for p in out:
            del self._pending[p.event_id]
        return out

    def due(self, now_s: float, ready: Callable[[float], bool]) -> list[PendingClip]:
        """The pending clips whose window the recorder has passed (`ready(end_s)`), or that waited
        `GIVE_UP_S` past it, taken out in order."""
        out = []
        for p in list(self._pending.values()):
            if now_s < p.end_s:
                continue
            if not ready(p.end_s):
                if now_s < p.end_s + GIVE_UP_S:
                    continue
                self.gave_up += 1
            out.append(self._pending.pop(p.event_id))
        return out

    def take_all(self) -> list[PendingClip]:
        """Everything still pending (the source ended): cut from what there is."""
        out = list(self._pending.values())
        self._pending.clear()
        return out
