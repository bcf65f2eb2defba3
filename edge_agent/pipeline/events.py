"""The one event builder: drafts (rule incidents, camera health) into contract `Event`s."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from edge_agent.contract.alarms import alarm_type
from edge_agent.core.types import ClipRef, Event, EventObject, Owner, OwnerSighting, SnapshotRef, iso_utc


@dataclass(frozen=True)
class EventDraft:
    """An event phase in media time, before it gets ids, wall times, relative boxes and a snapshot.

    The rule engine makes these for rule incidents and `app/health_events.py` for camera
    health; `EventBuilder` turns both into contract `Event`s the same way.
    """

    rule: str
    kind: str
    severity: str
    zone: str | None
    line: str | None
    phase: str
    key: str
    since_s: float
    media_s: float
    start_frame: int
    objects: tuple[EventObject, ...]
    instant: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    owner: OwnerSighting | None = None


def event_id(device: str, camera: str, rule: str, start_frame: int, key: str, start_wall_ts: float) -> str:
    """Stable id of one incident: the same inputs (a replay run twice) give the same id.

    The start time is part of it so that a restarted live agent, whose frame
    indexes start again at 0, never reuses an id.
    """
    basis = f"{device}|{camera}|{rule}|{start_frame}|{key}|{start_wall_ts:.3f}"
    return f"{device}-{hashlib.sha256(basis.encode()).hexdigest()[:20]}"


class EventBuilder:
    """Per camera: remembers each incident's id and snapshot across its phases."""

    def __init__(self, site: str, device: str, camera: str) -> None:
        self.site = site
        self.device = device
        self.camera = camera
        self._open: dict[tuple[str, str], tuple[str, SnapshotRef | None]] = {}
        self._owners: dict[tuple[str, str], Owner] = {}

    def event_id_for(self, draft: EventDraft, wall_offset_s: float) -> str:
        """`wall_offset_s` is wall time minus media time for this source."""
        known = self._open.get((draft.rule, draft.key))
        if known is not None:
            return known[0]
        return event_id(
            self.device, self.camera, draft.rule, draft.start_frame, draft.key, draft.since_s + wall_offset_s
        )

    def knows_owner(self, draft: EventDraft) -> bool:
        """Whether the incident of `draft` has its owner already (given with an earlier phase)."""
        return (draft.rule, draft.key) in self._owners

    def build(
        self,
        draft: EventDraft,
        wall_offset_s: float,
        snapshot: SnapshotRef | None = None,
        owner: Owner | None = None,
        clip: ClipRef | None = None,
    ) -> Event:
        """`owner` is given once (with its crop); later phases of the incident carry it too.
        `clip` goes with the phase it was cut for only."""
        key = (draft.rule, draft.key)
        eid = self.event_id_for(draft, wall_offset_s)
        if draft.phase == "start":
            if not draft.instant:
                self._open[key] = (eid, snapshot)
        else:
            snapshot = self._open.get(key, (eid, snapshot))[1]
            if draft.phase == "end":
                self._open.pop(key, None)
        if owner is not None:
            self._owners[key] = owner
        owner = self._owners.get(key)
        if draft.phase == "end" or draft.instant:
            self._owners.pop(key, None)
        objects = draft.objects
        lead = objects[0] if objects else None
        return Event(
            event_id=eid,
            phase=draft.phase,
            site=self.site,
            device=self.device,
            camera=self.camera,
            rule=draft.rule,
            kind=draft.kind,
            severity=draft.severity,
            zone=draft.zone if draft.zone is not None else draft.line,
            label=lead.label if lead else None,
            score=lead.score if lead else None,
            objects=objects,
            started_at=iso_utc(draft.since_s + wall_offset_s),
            ts=iso_utc(draft.media_s + wall_offset_s),
            media_s=draft.media_s,
            duration_s=max(0.0, draft.media_s - draft.since_s),
            snapshot=snapshot,
            details=draft.details,
            alarm_type=alarm_type(draft.kind),
            owner=owner,
            clip=clip,
        )
