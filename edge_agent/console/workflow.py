"""The duty officers' workflow on an incident: new -> acknowledged -> dispatched -> resolved / false alarm.

Every change and every note is an `incident_audit` row (who, when, from, to),
written in the same transaction as the incident's new state, so the trail and
the state never disagree. The caller owns the transaction (`db.transaction()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_agent.console import queries
from edge_agent.console import tables as t
from edge_agent.console.tables import OPEN_STATES, STATES

__all__ = [
    "ALLOWED",
    "OPEN_STATES",
    "STATES",
    "VERDICTS",
    "WorkflowError",
    "add_note",
    "apply_verdict",
    "transition",
    "transition_many",
]
ALLOWED: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged", "dispatched", "resolved", "false_alarm"),
    "acknowledged": ("dispatched", "resolved", "false_alarm"),
    "dispatched": ("resolved", "false_alarm", "acknowledged"),
    "resolved": ("acknowledged",),  # reopen
    "false_alarm": ("acknowledged",),  # reopen
}
# The first release's verdicts, still accepted from old clients.
VERDICTS = {"confirmed": "resolved", "false_alarm": "false_alarm"}
NOTE_MAX = 2000
NAME_MAX = 200
BULK_MAX = 500


class WorkflowError(Exception):
    """A change that cannot be made: `status` is the HTTP answer (404, 409 or 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _note(note: str | None) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise WorkflowError(422, f"note: text of at most {NOTE_MAX} characters")
    return note.strip() or None


def _who(who: str) -> str:
    if not isinstance(who, str) or not who.strip():
        raise WorkflowError(422, "who: the name of the person making the change")
    return who.strip()[:NAME_MAX]


def _current(conn: Connection, event_id: str) -> Any:
    row = conn.execute(
        sa.select(t.incidents.c.state, t.incidents.c.acknowledged_at).where(
            t.incidents.c.event_id == event_id
        )
    ).one_or_none()
    if row is None:
        raise WorkflowError(404, f"no incident {event_id!r}")
    return row


def _change(
    conn: Connection,
    event_id: str,
    to_state: str,
    *,
    who: str,
    now: float,
    assignee: str | None,
    note: str | None,
) -> None:
    if to_state not in STATES:
        raise WorkflowError(422, f"state: one of {', '.join(STATES)}, got {to_state!r}")
    who = _who(who)
    note = _note(note)
    if assignee is not None and (not isinstance(assignee, str) or len(assignee) > NAME_MAX):
        raise WorkflowError(422, f"assignee: a name of at most {NAME_MAX} characters")
    assignee = assignee.strip() if assignee else None
    if to_state == "dispatched" and not assignee:
        raise WorkflowError(422, "assignee: dispatching needs the name of the person sent")
    row = _current(conn, event_id)
    if to_state == row.state:
        raise WorkflowError(409, f"incident {event_id!r} is {row.state} already")
    if to_state not in ALLOWED[row.state]:
        raise WorkflowError(409, f"incident {event_id!r} is {row.state}: it cannot become {to_state}")
    values: dict[str, Any] = {"state": to_state, "state_changed_at": now, "updated_at": now}
    if to_state == "dispatched":
        values["assignee"] = assignee
    if row.acknowledged_at is None and to_state != "new":
        # Any first answer by a person acknowledges the alert: time to acknowledge ends here.
        values.update(acknowledged_at=now, acknowledged_by=who)
    values["resolved_at"] = now if to_state in ("resolved", "false_alarm") else None
    # The WHERE on the state read above makes a concurrent change lose cleanly (0 rows) instead
    # of writing over the other one.
    done = conn.execute(
        sa.update(t.incidents)
        .where(t.incidents.c.event_id == event_id, t.incidents.c.state == row.state)
        .values(**values)
    )
    if done.rowcount != 1:
        raise WorkflowError(409, f"incident {event_id!r} was changed by someone else meanwhile")
    conn.execute(
        sa.insert(t.incident_audit).values(
            event_id=event_id,
            at=now,
            who=who,
            action="state",
            from_state=row.state,
            to_state=to_state,
            assignee=assignee if to_state == "dispatched" else None,
            note=note,
        )
    )


def transition(
    conn: Connection,
    event_id: str,
    to_state: str,
    *,
    who: str,
    now: float,
    assignee: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Move one incident to `to_state`; returns it as `queries.incident` shows it."""
    _change(conn, event_id, to_state, who=who, now=now, assignee=assignee, note=note)
    found = queries.incident(conn, event_id)
    assert found is not None
    return found


def add_note(conn: Connection, event_id: str, *, who: str, now: float, text: str) -> dict[str, Any]:
    """A note on the incident's trail (1..2000 characters); the state stays."""
    if not isinstance(text, str) or not text.strip() or len(text) > NOTE_MAX:
        raise WorkflowError(422, f"text: a note of 1 to {NOTE_MAX} characters")
    who = _who(who)
    row = _current(conn, event_id)
    conn.execute(sa.update(t.incidents).where(t.incidents.c.event_id == event_id).values(updated_at=now))
    conn.execute(
        sa.insert(t.incident_audit).values(
            event_id=event_id,
            at=now,
            who=who,
            action="note",
            from_state=row.state,
            to_state=row.state,
            note=text.strip(),
        )
    )
    found = queries.incident(conn, event_id)
    assert found is not None
    return found


def transition_many(
    conn: Connection,
    event_ids: Sequence[str],
    to_state: str,
    *,
    who: str,
    now: float,
    assignee: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """The same change on several incidents; one that cannot change is reported, the rest go on.

    Each change runs in a SAVEPOINT, so a refused one leaves nothing behind.
    """
    if not isinstance(event_ids, (list, tuple)) or not event_ids or len(event_ids) > BULK_MAX:
        raise WorkflowError(422, f"event_ids: a list of 1 to {BULK_MAX} incident ids")
    changed: list[str] = []
    errors: dict[str, str] = {}
    for event_id in sorted(set(event_ids)):  # sorted: row locks in key order, as the ingest takes them
        if not isinstance(event_id, str):
            raise WorkflowError(422, "event_ids: incident ids are strings")
        try:
            with conn.begin_nested():
                _change(conn, event_id, to_state, who=who, now=now, assignee=assignee, note=note)
            changed.append(event_id)
        except WorkflowError as err:
            if err.status == 422:
                raise
            errors[event_id] = err.message
    return {"changed": changed, "errors": errors}


def apply_verdict(
    conn: Connection, event_id: str, verdict: str, *, who: str, now: float, note: str | None = None
) -> dict[str, Any]:
    """The first release's verdict, for old clients: confirmed -> resolved, false_alarm -> false_alarm."""
    if verdict not in VERDICTS:
        raise WorkflowError(422, f"verdict: one of {', '.join(VERDICTS)}, got {verdict!r}")
    return transition(conn, event_id, VERDICTS[verdict], who=who, now=now, note=note)
