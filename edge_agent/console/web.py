"""The console's web server: the duty officer's page, the JSON API and the live stream.

Standard library only (`ThreadingHTTPServer`, a thread per request): a town has
a handful of duty officers, not thousands. New alerts reach open pages by
Server-Sent Events (`/api/stream`): each stream wakes when this instance commits
and at least every `POLL_S` (rows another instance of a shared group wrote), and
sends the incidents changed since it last looked.

Every request needs a principal (see `auth`); state-changing ones also need
JSON and, when the browser says where it comes from, this console's own origin.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from edge_agent.console import api, queries
from edge_agent.console.auth import TOKEN_COOKIE, Authenticator, Principal, same_origin
from edge_agent.console.config import ConsoleConfig
from edge_agent.console.db import Database, DatabaseError, transient_errors
from edge_agent.console.store import BatchResult
from edge_agent.core.config import redact
from edge_agent.core.net import base_url, is_loopback

if TYPE_CHECKING:
    from edge_agent.console.ingest import Ingest

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
OPENAPI = HERE / "openapi.json"
POLL_S = 2.0  # how often a live stream looks for rows other instances wrote
OVERLAP_S = 5.0  # a stream re-reads this far back: commits of other instances land late
PING_S = 15.0
MAX_BODY_BYTES = 64_000
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(html|js|css)$")
_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css"}
_DB_ERRORS: tuple[type[BaseException], ...] = (DatabaseError, *transient_errors())
_INCIDENT = re.compile(r"^/api/incidents/([^/]+)(/snapshot\.jpg|/verdict)?$")


class ConsoleServer:
    """The HTTP side, on its own threads: `start()`, `url`, `notify()` after each commit, `stop()`."""

    def __init__(self, cfg: ConsoleConfig, db: Database) -> None:
        web = cfg.web
        if not is_loopback(web.bind) and not (web.auth.users or web.auth.tokens):
            raise ValueError(
                f"web.bind {web.bind} puts the console on the network: add web.auth.users or web.auth.tokens"
            )
        self.cfg = cfg
        self.db = db
        self.auth = Authenticator(web.auth)
        self.ingest: Ingest | None = None
        self.host, self.port = web.bind, web.port
        self._changed = threading.Condition()
        self._change_seq = 0
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="console-web", daemon=True)
        self._thread.start()
        self.port = int(self._httpd.server_address[1])
        logger.info("console page on %s:%d", self.host, self.port)

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def notify(self, result: BatchResult | None = None) -> None:
        """Wake the live streams (after a commit of this instance, or a verdict)."""
        with self._changed:
            self._change_seq += 1
            self._changed.notify_all()

    def wait_change(self, seen_seq: int, timeout_s: float) -> int:
        with self._changed:
            if self._change_seq == seen_seq and not self._stopping.is_set():
                self._changed.wait(timeout_s)
            return self._change_seq

    def status(self) -> dict[str, Any]:
        with self.db.connection() as conn:
            totals = queries.totals(conn)
        return {
            "database": {"engine": self.db.engine, "url": self.db.shown, "rows": totals},
            "mqtt": self.ingest.status() if self.ingest is not None else None,
        }


class _Handler(BaseHTTPRequestHandler):
    app: ConsoleServer
    server_version = "edge-agent-console"
    protocol_version = "HTTP/1.1"
    principal: Principal | None = None

    def log_message(self, format: str, *args: Any) -> None:
        # The request line may hold ?token=: log the path only.
        logger.debug("%s %s %s", self.address_string(), self.command, urlsplit(self.path).path)

    # --- responses ---------------------------------------------------------------------

    def _headers(self, status: int, content_type: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
        )
        p = self.principal
        if p is not None and p.token is not None:
            self.send_header("Set-Cookie", f"{TOKEN_COOKIE}={p.token}; HttpOnly; SameSite=Strict; Path=/")
        if status == HTTPStatus.UNAUTHORIZED and self.app.auth.wants_basic:
            self.send_header("WWW-Authenticate", 'Basic realm="edge-agent console", charset="UTF-8"')
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self._headers(status, content_type, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": redact(message)})

    # --- access ------------------------------------------------------------------------

    def _allowed(self) -> bool:
        self.principal = self.app.auth.check(self.path, self.headers, self.client_address[0])
        if self.principal is None:
            self._error(HTTPStatus.UNAUTHORIZED, "log in: a user name and password, or ?token=")
            return False
        return True

    # --- routes ------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._allowed():
            return
        parts = urlsplit(self.path)
        route, query = parts.path, parse_qs(parts.query)
        try:
            self._get(route, query)
        except api.ApiError as err:
            self._error(err.status, err.message)
        except _DB_ERRORS as err:
            logger.warning("%s: database: %s", route, redact(str(err)))
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"database unavailable: {err}")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (a closed live stream)

    do_HEAD = do_GET

    def _get(self, route: str, query: dict[str, list[str]]) -> None:
        app = self.app
        if route in ("/", "/index.html"):
            self._static("console.html")
        elif route.startswith("/alert/"):
            self._static("alert.html")
        elif route.startswith("/static/"):
            self._static(route.removeprefix("/static/"))
        elif route == "/api/openapi.json":
            self._send(200, OPENAPI.read_bytes(), "application/json")
        elif route == "/api/me":
            assert self.principal is not None
            self._json(200, {"name": self.principal.name, "via": self.principal.via})
        elif route == "/api/status":
            self._json(200, app.status())
        elif route == "/api/incidents":
            self._json(200, api.list_incidents(app.db, query))
        elif route == "/api/health":
            self._json(200, api.get_health(app.db, app.cfg.stalled_after_s))
        elif route == "/api/facets":
            self._json(200, api.get_facets(app.db))
        elif route == "/api/counts":
            self._json(200, api.get_counts(app.db, query))
        elif route == "/api/stream":
            self._stream(query)
        elif (m := _INCIDENT.match(route)) and m.group(2) != "/verdict":
            event_id = unquote(m.group(1))
            if m.group(2) == "/snapshot.jpg":
                with app.db.connection() as conn:
                    jpeg = queries.snapshot_jpeg(conn, event_id)
                if jpeg is None:
                    raise api.ApiError(HTTPStatus.NOT_FOUND, f"no snapshot for {event_id!r}")
                self._send(200, jpeg, "image/jpeg")
            else:
                self._json(200, api.get_incident(app.db, event_id))
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no page {route}")

    def do_POST(self) -> None:
        if not self._allowed():
            return
        route = urlsplit(self.path).path
        m = _INCIDENT.match(route)
        if not m or m.group(2) != "/verdict":
            self._error(HTTPStatus.NOT_FOUND, f"no page {route}")
            return
        if not same_origin(self.headers, self.app.cfg.web.public_url):
            self._error(HTTPStatus.FORBIDDEN, "cross-site request refused (Origin is not this console)")
            return
        # JSON only: a form on another site cannot send it without a CORS preflight we never answer.
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError as err:
            self._error(HTTPStatus.BAD_REQUEST, f"malformed JSON: {err}")
            return
        assert self.principal is not None
        try:
            out = api.post_verdict(self.app.db, unquote(m.group(1)), body, self.principal.name)
        except api.ApiError as err:
            self._error(err.status, err.message)
            return
        except _DB_ERRORS as err:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"database unavailable: {err}")
            return
        logger.info("%s marked %s as %s", out["by"], out["event_id"], out["verdict"])
        self.app.notify()
        self._json(200, out)

    def _static(self, name: str) -> None:
        path = STATIC_DIR / name
        if not _STATIC_NAME.match(name) or not path.is_file():
            self._error(HTTPStatus.NOT_FOUND, f"no file {name}")
            return
        self._send(200, path.read_bytes(), _TYPES[name.rsplit(".", 1)[1]])

    # --- the live stream ---------------------------------------------------------------

    def _stream(self, query: dict[str, list[str]]) -> None:
        """Server-Sent Events: `event: incident` with the incident's JSON, for each change."""
        try:
            flt = queries.IncidentFilter.from_query(query)
            since = float(query.get("since", [str(time.time())])[0])
        except ValueError as err:
            raise api.ApiError(HTTPStatus.BAD_REQUEST, str(err)) from err
        self._headers(200, "text/event-stream", None)
        self.close_connection = True
        sent: dict[str, float] = {}  # event_id -> updated_at already sent
        cursor = since
        seq = -1
        last_write = time.monotonic()
        self.wfile.write(b"retry: 2000\n: connected\n\n")
        self.wfile.flush()
        while not self.app._stopping.is_set():
            try:
                with self.app.db.connection() as conn:
                    rows = queries.incidents(conn, flt, updated_since=cursor - OVERLAP_S)
            except _DB_ERRORS as err:
                # The headers are sent: end the stream; the browser reconnects (`retry`).
                logger.warning("live stream: database: %s", redact(str(err)))
                return
            fresh = [r for r in rows if sent.get(r["event_id"], -1.0) < r["updated_at"]]
            for row in reversed(fresh):  # oldest first, so the page ends with the newest on top
                data = json.dumps(row, ensure_ascii=False)
                self.wfile.write(f"event: incident\ndata: {data}\n\n".encode())
                sent[row["event_id"]] = row["updated_at"]
                cursor = max(cursor, row["updated_at"])
            if fresh:
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= PING_S:
                self.wfile.write(b": ping\n\n")
                last_write = time.monotonic()
            self.wfile.flush()
            for key in [k for k, v in sent.items() if v < cursor - 2 * OVERLAP_S]:
                del sent[key]
            seq = self.app.wait_change(seq, POLL_S)
