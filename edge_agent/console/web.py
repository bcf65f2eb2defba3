"""The console's web server: the duty officer's pages, the JSON API and the live stream.

FastAPI on uvicorn, in a thread of the console's process (`ConsoleServer`: `start()`,
`url`, `notify()` after each commit, `stop()`). Routes live in `routes_*`; the guard
(`web_guard`) decides who gets in and which bodies are read before any of them runs.
The OpenAPI description is generated from the routes and served at /api/openapi.json.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from edge_agent import __version__
from edge_agent.console import (
    routes_api,
    routes_devices,
    routes_export,
    routes_pages,
    routes_stream,
    routes_workflow,
)
from edge_agent.console.auth import TOKEN_COOKIE, TOKEN_HEADER, Authenticator
from edge_agent.console.config import ConsoleConfig
from edge_agent.console.db import Database, DatabaseError, transient_errors
from edge_agent.console.devices import Fleet
from edge_agent.console.web_guard import ConsoleH11Protocol, Guard
from edge_agent.console.web_state import ApiError, WebContext, db_problem
from edge_agent.core.config import redact
from edge_agent.core.net import base_url, is_loopback

if TYPE_CHECKING:
    from edge_agent.console.ingest import Ingest

logger = logging.getLogger(__name__)

OPENAPI_URL = "/api/openapi.json"
ROUTERS = (routes_pages.router, routes_workflow.router, routes_stream.router, routes_api.router,
           routes_export.router, routes_devices.router)  # fmt: skip
STOP_GRACE_S = 3.0
START_TIMEOUT_S = 15.0


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": redact(message)}, status_code=status)


def _validation_message(err: RequestValidationError) -> tuple[int, str]:
    """The first problem, named by its parameter: 400 for the query or path, 422 for a body."""
    problems = err.errors()
    first = problems[0] if problems else {}
    loc = [str(p) for p in first.get("loc", ())]
    where = loc[0] if loc else ""
    name = ".".join(loc[1:]) or where
    if first.get("type") == "json_invalid":
        return 400, "malformed JSON"
    status = 422 if where == "body" else 400
    return status, f"{name}: {first.get('msg', 'invalid')}" if name else str(first.get("msg", "invalid"))


def create_app(ctx: WebContext) -> FastAPI:
    app = FastAPI(
        title="Eagle Eye town console",
        version=__version__,
        description="The duty officer's API: incidents and their workflow, health, counts, the map,"
        " the boxes' remote operations.",
        openapi_url=OPENAPI_URL,
        docs_url=None,  # the interactive pages load scripts from a CDN: not on this console
        redoc_url=None,
    )
    app.state.console = ctx
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: _openapi_with_logins(app)  # type: ignore[method-assign]

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, err.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        if err.status_code == 404:
            return _error(404, f"no page {request.url.path}")
        if err.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(*_validation_message(err))

    async def database_down(request: Request, err: Exception) -> JSONResponse:
        problem = db_problem(err)
        logger.warning("%s: database: %s", request.url.path, problem)
        return _error(503, f"database unavailable: {problem}")

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception) -> JSONResponse:
        # The framework logs the traceback (a bug); the client gets JSON like every other error.
        return _error(500, "internal error (see the console's log)")

    kinds: tuple[type[BaseException], ...] = (DatabaseError, *transient_errors())
    for kind in kinds:
        if issubclass(kind, Exception):
            app.add_exception_handler(kind, database_down)
    app.add_middleware(Guard, ctx=ctx)
    return app


def _openapi_with_logins(app: FastAPI) -> dict[str, Any]:
    """The generated description, plus the ways to log in (the guard checks them on every path)."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        spec.setdefault("components", {})["securitySchemes"] = {
            "basic": {"type": "http", "scheme": "basic"},
            "bearer": {"type": "http", "scheme": "bearer"},
            "header": {"type": "apiKey", "in": "header", "name": TOKEN_HEADER},
            "query": {"type": "apiKey", "in": "query", "name": "token"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": TOKEN_COOKIE},
        }
        # any one of them; a request from this machine may need none (web.auth.trust_loopback)
        spec["security"] = [{name: []} for name in ("basic", "bearer", "header", "query", "cookie")] + [{}]
        app.openapi_schema = spec
    return app.openapi_schema


class ConsoleServer:
    """The HTTP side, on its own thread: `start()`, `url`, `notify()` after each commit, `stop()`."""

    def __init__(self, cfg: ConsoleConfig, db: Database, *, read_only: bool = False) -> None:
        web = cfg.web
        if not is_loopback(web.bind) and not (web.auth.users or web.auth.tokens):
            raise ValueError(
                f"web.bind {web.bind} puts the console on the network: add web.auth.users or web.auth.tokens"
            )
        self.cfg = cfg
        self.db = db
        self.ctx = WebContext(cfg, db, Authenticator(web.auth), read_only=read_only)
        self.ctx.fleet = Fleet.load(cfg)  # a key that cannot be read stops the start, named
        self.app = create_app(self.ctx)
        self.host, self.port = web.bind, web.port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def ingest(self) -> Ingest | None:
        return self.ctx.ingest

    @ingest.setter
    def ingest(self, ingest: Ingest | None) -> None:
        self.ctx.ingest = ingest

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    def start(self) -> None:
        """Listen (an OSError here names a port in use), then serve on a thread."""
        sock = self._listen()
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            http=ConsoleH11Protocol,
            ws="none",
            lifespan="off",
            log_config=None,  # the console's own logging set-up
            access_log=False,  # it would log query strings, which may hold a token
            proxy_headers=False,  # loopback trust reads the peer itself, never a forwarded header
            server_header=False,
            timeout_graceful_shutdown=int(STOP_GRACE_S),
        )
        server = uvicorn.Server(config)
        self._server = server
        started = threading.Event()

        async def serve() -> None:
            self.ctx.feed.bind(asyncio.get_running_loop())
            await server.serve(sockets=[sock])

        def run() -> None:
            try:
                asyncio.run(serve())
            except Exception:
                logger.exception("the console's web server stopped")
            finally:
                started.set()
                sock.close()

        self._thread = threading.Thread(target=run, name="console-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not started.wait(0.02) and not server.started and time.monotonic() < deadline:
            pass
        if not server.started:
            self.stop()
            raise OSError(f"the web server did not start on {self.host}:{self.port}")
        logger.info("console page on %s:%d", self.host, self.port)

    def _listen(self) -> socket.socket:
        family, kind, proto, _, addr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        return sock

    def stop(self) -> None:
        self.ctx.feed.close()  # live streams end, so the server need not wait for them
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_GRACE_S + 5.0)
            self._thread = None
        self._server = None

    def notify(self, result: Any = None) -> None:
        """Wake the live streams (after a commit of this instance); any thread."""
        self.ctx.feed.notify()
