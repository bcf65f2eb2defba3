"""What every route of the web application shares: the context, the change feed, errors, times.

The routes are plain functions of the framework; they reach the config, the
database and the feed through `context(request)` and the caller through
`principal(request)` (set by the guard, `web_guard`, before any route runs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse

from edge_agent.console.auth import Authenticator, Principal
from edge_agent.console.config import ConsoleConfig
from edge_agent.console.db import Database
from edge_agent.core.config import redact

if TYPE_CHECKING:
    from edge_agent.console.devices import Fleet
    from edge_agent.console.ingest import Ingest

logger = logging.getLogger(__name__)


class Json(JSONResponse):
    """A JSON answer written straight by `json.dumps`: the framework's generic encoder took three
    times as long as the query for a list of 200 incidents. UTF-8, so village names stay readable."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ApiError(Exception):
    """Answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ChangeFeed:
    """Wakes the live streams when this instance commits (the ingest's thread) or a duty officer acts.

    The streams wait on the server's event loop; `notify()` may come from any thread.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._lock = threading.Lock()
        self.seq = 0
        self.closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._loop = loop
            self.closed = False

    def notify(self) -> None:
        with self._lock:
            loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._bump)
        except RuntimeError:
            pass  # the loop closed between the check and the call: nobody is waiting any more

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closed = True
        self.notify()

    def _bump(self) -> None:
        self.seq += 1
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, seen: int, timeout_s: float) -> int:
        """Until the sequence moves past `seen` or `timeout_s` passes; the sequence then."""
        if self.seq == seen and not self.closed:
            if self._event is None:
                self._event = asyncio.Event()
            try:
                await asyncio.wait_for(self._event.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
        return self.seq


@dataclass
class WebContext:
    cfg: ConsoleConfig
    db: Database
    auth: Authenticator
    read_only: bool = False
    ingest: Ingest | None = None
    feed: ChangeFeed = field(default_factory=ChangeFeed)
    fleet: Fleet | None = None  # remote operations: None without `fleet:` in the config

    @property
    def zone_name(self) -> str:
        return self.cfg.timezone or "UTC"


def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.console
    return ctx


def principal(request: Request) -> Principal:
    who: Principal | None = request.scope.get("state", {}).get("principal")
    if who is None:  # the guard lets no request through without one
        raise ApiError(401, "log in")
    return who


def parse_time(name: str, text: str | None, zone: str) -> float | None:
    """`from`/`to`/`since` -> seconds since the epoch; None for nothing.

    RFC 3339 with an offset (`2026-11-26T08:00:00Z`), a local time or a date in `zone`
    (`2026-11-26T16:00`, `2026-11-26`: midnight there), or epoch seconds.
    """
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as err:
        raise ApiError(
            400, f"{name}: expected a time like 2026-11-26T08:00:00Z or a date like 2026-11-26, got {text!r}"
        ) from err
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(zone))
    return dt.timestamp()


def db_problem(err: BaseException) -> str:
    """A database error in one line: the driver's own first line, passwords hidden."""
    orig = getattr(err, "orig", None) or err  # SQLAlchemy wraps the driver's error
    lines = str(orig).strip().splitlines()
    return redact(lines[0] if lines else type(orig).__name__)


def iso(ts: float) -> str:
    """Seconds since the epoch -> RFC 3339 UTC with milliseconds, as in the payloads."""
    dt = datetime.fromtimestamp(round(ts, 3), timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def now() -> float:
    return time.time()


def blank_to_none(data: Any) -> Any:
    """A form's empty field (`?site=`) means no filter."""
    if isinstance(data, dict):
        return {k: (None if v == "" else v) for k, v in data.items()}
    return data
