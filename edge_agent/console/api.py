"""The JSON API under /api/: one function per route, taking the database and the request's data.

Documented in `openapi.json` (served at /api/openapi.json) and docs/console.md.
Each function returns (HTTP status, JSON-able body) or raises `ApiError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

from edge_agent.console import queries
from edge_agent.console.db import Database
from edge_agent.console.store import VERDICTS, set_verdict


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    dt = datetime.now(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def list_incidents(db: Database, query: Mapping[str, list[str]]) -> dict[str, Any]:
    try:
        flt = queries.IncidentFilter.from_query(query)
    except ValueError as err:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(err)) from err
    as_of = time.time()
    with db.connection() as conn:
        rows = queries.incidents(conn, flt)
    return {"incidents": rows, "as_of": as_of}


def get_incident(db: Database, event_id: str) -> dict[str, Any]:
    with db.connection() as conn:
        row = queries.incident(conn, event_id)
    if row is None:
        raise ApiError(HTTPStatus.NOT_FOUND, f"no incident {event_id!r}")
    return row


def post_verdict(db: Database, event_id: str, body: Any, who: str) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("verdict") not in VERDICTS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f'send {{"verdict": one of {", ".join(VERDICTS)}}}')
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise ApiError(HTTPStatus.BAD_REQUEST, "note: a string of at most 2000 characters")
    at = now_iso()
    with db.transaction() as conn:
        found = set_verdict(conn, event_id, body["verdict"], who, at, time.time(), note)
    if not found:
        raise ApiError(HTTPStatus.NOT_FOUND, f"no incident {event_id!r}")
    return {"event_id": event_id, "verdict": body["verdict"], "by": who, "at": at}


def get_health(db: Database, stalled_after_s: float) -> dict[str, Any]:
    with db.connection() as conn:
        return queries.health(conn, stalled_after_s)


def get_facets(db: Database) -> dict[str, Any]:
    with db.connection() as conn:
        return queries.facets(conn)


def get_counts(db: Database, query: Mapping[str, list[str]]) -> dict[str, Any]:
    clauses, params = [], []
    for key in ("site", "device", "camera", "rule"):
        if query.get(key) and query[key][0]:
            clauses.append(f"{key} = ?")
            params.append(query[key][0])
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = (
        "SELECT site, device, camera, rule, payload, received_at FROM counts"  # noqa: S608 (bound values)
        f"{where} ORDER BY id DESC LIMIT 500"
    )
    with db.connection() as conn:
        rows = conn.all(sql, params)
    for r in rows:
        r["payload"] = json.loads(r["payload"])
        r["received_at"] = float(r["received_at"])
    return {"counts": rows}
