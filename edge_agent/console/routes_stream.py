"""The live list: Server-Sent Events with every incident created or changed after `since`.

A stream sleeps until this instance commits (the ingest's `on_commit`, or a duty officer's
action, wakes the `ChangeFeed`) and re-reads every `REREAD_S` anyway, for rows the other
instances of a shared group wrote. Each read looks `OVERLAP_S` back, because another
instance's commit may land with an older time than this one's latest; what was already
sent is not sent again. A browser that leaves ends its stream quietly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from edge_agent.console import queries
from edge_agent.console.db import DatabaseError, transient_errors
from edge_agent.console.web_models import StreamQuery
from edge_agent.console.web_state import WebContext, context, db_problem, now, parse_time

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["read"])
Ctx = Annotated[WebContext, Depends(context)]
REREAD_S = 5.0
OVERLAP_S = 5.0
PING_S = 15.0
_DB_ERRORS: tuple[type[BaseException], ...] = (DatabaseError, *transient_errors())


def _changed(ctx: WebContext, q: StreamQuery, after: float) -> list[dict[str, Any]]:
    flt = q.filter(ctx, updated_since=after)
    with ctx.db.connection() as conn:
        rows: list[dict[str, Any]] = queries.incidents(conn, flt)
    return rows


async def _events(
    ctx: WebContext, q: StreamQuery, since: float, seq: int, rows: list[dict[str, Any]]
) -> AsyncIterator[ServerSentEvent]:
    """`rows` is the first read (done before the answer began); `seq` the feed's before it."""
    yield ServerSentEvent(comment="connected", retry=2000)  # from here on, every commit is seen
    sent: dict[str, float] = {}  # event_id -> updated_epoch already sent
    cursor = since
    while True:
        fresh = [r for r in rows if sent.get(r["event_id"], -1.0) < float(r["updated_epoch"])]
        for row in sorted(fresh, key=lambda r: float(r["updated_epoch"])):  # oldest first
            yield ServerSentEvent(event="incident", data=json.dumps(row, ensure_ascii=False))
            sent[row["event_id"]] = float(row["updated_epoch"])
            cursor = max(cursor, float(row["updated_epoch"]))
        for key in [k for k, v in sent.items() if v < cursor - 2 * OVERLAP_S]:
            del sent[key]
        seq = await ctx.feed.wait(seq, REREAD_S)
        if ctx.feed.closed:
            return
        try:
            rows = await run_in_threadpool(_changed, ctx, q, cursor - OVERLAP_S)
        except _DB_ERRORS as err:
            # The headers are out: end the stream; the browser comes back after `retry`.
            logger.warning("live stream: database: %s", db_problem(err))
            return


@router.get(
    "/stream",
    summary="Server-Sent Events: `event: incident` for each incident created or changed",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(ctx: Ctx, q: Annotated[StreamQuery, Query()]) -> EventSourceResponse:
    since = parse_time("since", q.since, ctx.zone_name)
    start = now() if since is None else since
    seq = ctx.feed.seq
    # The first read before answering: a bad `from`/`to` is a 400, an unreachable database a 503.
    rows = await run_in_threadpool(_changed, ctx, q, start - OVERLAP_S)
    return EventSourceResponse(
        _events(ctx, q, start, seq, rows),
        ping=PING_S,
        send_timeout=30,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
