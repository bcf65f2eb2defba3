"""The duty officer's actions: move an incident through its states, add a note, act on many at once.

Each runs in one transaction and records who (the logged-in name) and when; the live
streams are woken after the commit. The guard has already checked the caller, the origin,
the body's length and type; a read-only console never gets here.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from edge_agent.console import workflow
from edge_agent.console.auth import Principal
from edge_agent.console.web_models import BulkBody, NoteBody, StateBody, VerdictBody
from edge_agent.console.web_state import ApiError, Json, WebContext, context, iso, now, principal

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/incidents", tags=["workflow"])
Ctx = Annotated[WebContext, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "read-only console, or a request from another site"},
    404: {"description": "no such incident"},
    409: {"description": "not allowed from the incident's state"},
    411: {"description": "no Content-Length"},
    413: {"description": "body over 64 kB"},
    415: {"description": "not application/json"},
    422: {"description": "bad input"},
}


def _transition(ctx: WebContext, event_id: str, state: str, who: str, **kw: Any) -> dict[str, Any]:
    try:
        with ctx.db.transaction() as conn:
            out: dict[str, Any] = workflow.transition(conn, event_id, state, who=who, now=now(), **kw)
    except workflow.WorkflowError as err:
        raise ApiError(err.status, err.message) from err
    logger.info("%s set %s to %s", who, event_id, state)
    ctx.feed.notify()
    return out


@router.post("/bulk", summary="one state for many incidents", responses=_ERRORS)  # before /{event_id}/...
def bulk(ctx: Ctx, who: Who, body: BulkBody) -> Json:
    try:
        with ctx.db.transaction() as conn:
            out: dict[str, Any] = workflow.transition_many(
                conn,
                body.event_ids,
                body.state,
                who=who.name,
                now=now(),
                assignee=body.assignee,
                note=body.note,
            )
    except workflow.WorkflowError as err:
        raise ApiError(err.status, err.message) from err
    logger.info("%s set %d incident(s) to %s", who.name, len(out.get("changed", [])), body.state)
    ctx.feed.notify()
    return Json(out)


@router.post("/{event_id}/state", summary="move an incident to another state", responses=_ERRORS)
def set_state(ctx: Ctx, who: Who, event_id: str, body: StateBody) -> Json:
    return Json(_transition(ctx, event_id, body.state, who.name, assignee=body.assignee, note=body.note))


@router.post("/{event_id}/notes", summary="add a note to an incident's audit trail", responses=_ERRORS)
def add_note(ctx: Ctx, who: Who, event_id: str, body: NoteBody) -> Json:
    try:
        with ctx.db.transaction() as conn:
            out: dict[str, Any] = workflow.add_note(conn, event_id, who=who.name, now=now(), text=body.text)
    except workflow.WorkflowError as err:
        raise ApiError(err.status, err.message) from err
    logger.info("%s added a note to %s", who.name, event_id)
    ctx.feed.notify()
    return Json(out)


@router.post(
    "/{event_id}/verdict",
    summary="the first release's verdict: confirmed resolves the incident, false_alarm dismisses it",
    responses=_ERRORS,
)
def set_verdict(ctx: Ctx, who: Who, event_id: str, body: VerdictBody) -> Json:
    at = now()
    try:
        with ctx.db.transaction() as conn:
            out = workflow.apply_verdict(conn, event_id, body.verdict, who=who.name, now=at, note=body.note)
    except workflow.WorkflowError as err:
        raise ApiError(err.status, err.message) from err
    logger.info("%s gave %s the verdict %s", who.name, event_id, body.verdict)
    ctx.feed.notify()
    return Json({"event_id": event_id, "verdict": body.verdict, "by": who.name, "at": iso(at),
                 "state": out["state"]})  # fmt: skip
