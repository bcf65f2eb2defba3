"""The door every request passes before any route: who it is, whether it may change anything,
and whether its body is acceptable, all decided from the headers alone.

An answer from here is given at once, without reading a byte of the body, and closes the
connection (the unread body would otherwise be taken for the next request):

- no principal (see `auth`): 401;
- a POST to a read-only console (`--no-mqtt`): 403;
- a POST whose browser says it comes from another site: 403;
- a body sent in chunks, or a POST without `Content-Length`: 411; a length that is not a byte
  count: 400 (the HTTP parser refuses `-1` and `abc` before this runs, see `ConsoleH11Protocol`);
  over `MAX_BODY_BYTES`: 413;
- a POST that is not `application/json`: 415 (a form on another site cannot send JSON without
  a CORS preflight, which is never answered).

Every answer gets the security headers; a token given as `?token=` comes back as an
HttpOnly, SameSite=Strict cookie. The request log names the path only (a query may hold a token).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from edge_agent.console.auth import TOKEN_COOKIE, same_origin
from edge_agent.console.web_state import WebContext

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64_000
_BODY_METHODS = ("POST", "PUT", "PATCH")


def content_security_policy(tile_url: str | None) -> str:
    """Only this console's own files; map tiles from the configured tile server, if any."""
    img = "'self' data:"
    if tile_url:
        scheme, _, rest = tile_url.partition("://")
        host = rest.split("/", 1)[0]
        # `{s}.tile.example` names several hosts: allow the domain's subdomains
        img += f" {scheme}://{'*.' + host.split('.', 1)[1] if host.startswith('{s}.') else host}"
    return (
        f"default-src 'self'; img-src {img}; style-src 'self'; script-src 'self'; connect-src 'self';"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _json_error(status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> list[Message]:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *(extra or []),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


class Guard:
    """ASGI middleware around the whole application."""

    def __init__(self, app: ASGIApp, ctx: WebContext) -> None:
        self.app = app
        self.ctx = ctx
        self.csp = content_security_policy(ctx.cfg.map.tile_url)
        public = ctx.cfg.web.public_url or ""
        self.cookie_flags = "; HttpOnly; SameSite=Strict; Path=/" + (
            "; Secure" if public.startswith("https:") else ""
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        peer = scope["client"][0] if scope.get("client") else ""
        logger.debug("%s %s %s", peer, method, scope["path"])
        query = scope.get("query_string", b"").decode("latin-1")
        who = self.ctx.auth.check(scope["path"] + ("?" + query if query else ""), headers, peer)
        refusal: tuple[int, str] | None = None
        extra: list[tuple[bytes, bytes]] = []
        if who is None:
            refusal = (401, "log in: a user name and password, or ?token=")
            if self.ctx.auth.wants_basic:
                extra.append((b"www-authenticate", b'Basic realm="edge-agent console", charset="UTF-8"'))
        else:
            refusal = self._refusal(method, headers)
        if refusal is not None:
            for message in _json_error(*refusal, extra):
                await self._send_with_headers(send, message, None)
            return
        scope.setdefault("state", {})["principal"] = who
        cookie = who.token if who is not None else None

        async def send_wrapper(message: Message) -> None:
            await self._send_with_headers(send, message, cookie)

        await self.app(scope, receive, send_wrapper)

    def _refusal(self, method: str, headers: Headers) -> tuple[int, str] | None:
        if method in _BODY_METHODS:
            if self.ctx.read_only:
                return 403, "read-only console"
            if not same_origin(headers, self.ctx.cfg.web.public_url):
                return 403, "cross-site request refused (Origin is not this console)"
        if "transfer-encoding" in headers:
            return 411, "send a Content-Length, not chunks"
        length = headers.get("content-length")
        if length is None:
            if method in _BODY_METHODS:
                return 411, "a Content-Length is needed"
        elif not length.strip().isdigit():
            return 400, "Content-Length must be a byte count"
        elif int(length) > MAX_BODY_BYTES:
            return 413, f"request too large: at most {MAX_BODY_BYTES} bytes"
        if method in _BODY_METHODS:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return 415, "send application/json"
        return None

    async def _send_with_headers(self, send: Send, message: Message, cookie: str | None) -> None:
        if message["type"] == "http.response.start":
            h = MutableHeaders(scope=message)
            if "cache-control" not in h:
                h["Cache-Control"] = "no-store"
            h["X-Content-Type-Options"] = "nosniff"
            h["X-Frame-Options"] = "DENY"
            h["Referrer-Policy"] = "no-referrer"
            h["Content-Security-Policy"] = self.csp
            if cookie is not None:
                h.append("Set-Cookie", f"{TOKEN_COOKIE}={cookie}{self.cookie_flags}")
        await send(message)


class ConsoleH11Protocol(H11Protocol):
    """The HTTP parser's own refusals (a request line or header it cannot read, such as
    `Content-Length: -1` or `abc`) answered as JSON like every other error."""

    def send_400_response(self, msg: str) -> None:
        import h11

        body = json.dumps({"error": "malformed HTTP request (a request line or header, e.g. Content-Length)"})
        data = body.encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"connection", b"close"),
        ]
        writes: list[Any] = [
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=data),
            h11.EndOfMessage(),
        ]
        try:
            for event in writes:
                out = self.conn.send(event)
                if out:
                    self.transport.write(out)
        except h11.LocalProtocolError:
            pass  # a response had already begun on this connection: just close it
        self.transport.close()
