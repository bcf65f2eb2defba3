"""CSV downloads for a date range: incidents (with their workflow) and count aggregates.

A cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@` first) gets a
leading `'`: the text comes from the boxes and must not run in the reader's spreadsheet.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import StreamingResponse

from edge_agent.console import queries
from edge_agent.console.web_models import CountExportQuery, ExportQuery
from edge_agent.console.web_state import WebContext, context

router = APIRouter(prefix="/api/export", tags=["export"])
Ctx = Annotated[WebContext, Depends(context)]
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "a CSV file (attachment)"}
}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    if isinstance(value, (list, dict)):
        return str(value)
    return value


def _lines(rows: list[dict[str, Any]]) -> Iterator[str]:
    if not rows:
        yield "\r\n"
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), extrasaction="ignore")
    writer.writeheader()
    for i, row in enumerate(rows, 1):
        writer.writerow({k: _cell(v) for k, v in row.items()})
        if i % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _attachment(lines: Iterable[str], name: str) -> StreamingResponse:
    return StreamingResponse(
        iter(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _span(q: Any) -> str:
    # only what is safe in a file name and a header: the bounds are the caller's text
    parts = [re.sub(r"[^0-9A-Za-z._-]", "", p)[:32] for p in (q.from_, q.to) if p]
    return ("-" + "-".join(parts)) if parts else ""


@router.get("/incidents.csv", summary="incidents started in a range, with filters", responses=_CSV)
def incidents_csv(ctx: Ctx, q: Annotated[ExportQuery, Query()]) -> StreamingResponse:
    flt = q.filter(ctx)
    with ctx.db.connection() as conn:
        rows = queries.incidents_rows(conn, flt)
    return _attachment(_lines(rows), f"incidents{_span(q)}.csv")


@router.get("/counts.csv", summary="count aggregates received in a range", responses=_CSV)
def counts_csv(ctx: Ctx, q: Annotated[CountExportQuery, Query()]) -> StreamingResponse:
    start, end = q.bounds(ctx)
    with ctx.db.connection() as conn:
        rows = queries.count_rows(conn, start, end)
    return _attachment(_lines(rows), f"counts{_span(q)}.csv")
