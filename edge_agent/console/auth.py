"""Who is asking: a token, HTTP basic auth, or this machine (when trusted).

Secrets are read once at start (files included) and compared in constant time;
none is ever logged. A token given once as `?token=` is turned into an
HttpOnly, SameSite=Strict cookie so the page's own requests (EventSource and
images cannot send headers) carry it.

Loopback trust needs both a loopback peer and a loopback Host header: a page on
another site that points a DNS name at 127.0.0.1 (DNS rebinding) sends its own
name as Host and is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

from edge_agent.console.config import AuthConfig, read_secret
from edge_agent.core.net import is_loopback

TOKEN_COOKIE = "edge_console_token"  # noqa: S105 (a cookie name)
TOKEN_HEADER = "X-Console-Token"  # noqa: S105 (a header name)
LOOPBACK_USER = "loopback"
Headers = Mapping[str, str]  # the framework's (case-insensitive) headers, or a plain dict in tests


@dataclass(frozen=True)
class Principal:
    name: str
    via: str  # "token", "basic" or "loopback"
    token: str | None = None  # set when a query token should become a cookie


class Authenticator:
    def __init__(self, cfg: AuthConfig) -> None:
        self.trust_loopback = cfg.trust_loopback
        self._users: dict[str, bytes] = {}
        for i, u in enumerate(cfg.users):
            secret = u.password if u.password is not None else ""
            if u.password_file:
                secret = read_secret(u.password_file, f"web.auth.users[{i}].password_file")
            self._users[u.name] = secret.encode()
        self._tokens: list[tuple[str, bytes]] = []
        for i, t in enumerate(cfg.tokens):
            secret = t.token if t.token is not None else ""
            if t.token_file:
                secret = read_secret(t.token_file, f"web.auth.tokens[{i}].token_file")
            self._tokens.append((t.name, secret.encode()))

    @property
    def wants_basic(self) -> bool:
        return bool(self._users)

    def check(self, path: str, headers: Headers, peer: str) -> Principal | None:
        """The principal of a request (`path` with its query string), or None (then answer 401)."""
        token, from_query = self._presented_token(path, headers)
        if token is not None:
            for name, secret in self._tokens:
                if hmac.compare_digest(token.encode(), secret):
                    return Principal(name, "token", token if from_query else None)
            return None  # a wrong token is not made good by the other ways
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            want = self._users.get(user)
            # compare even for an unknown user, so timing does not tell which names exist
            ok = hmac.compare_digest(password.encode(), want if want is not None else b"\0" * 32)
            return Principal(user, "basic") if ok and want is not None else None
        if self.trust_loopback and is_loopback(peer):
            host = urlsplit("//" + headers.get("Host", "")).hostname or ""
            if is_loopback(host):
                return Principal(LOOPBACK_USER, "loopback")
        return None

    @staticmethod
    def _presented_token(path: str, headers: Headers) -> tuple[str | None, bool]:
        query = parse_qs(urlsplit(path).query)
        if query.get("token"):
            return query["token"][0], True
        if headers.get(TOKEN_HEADER):
            return headers[TOKEN_HEADER], False
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth.removeprefix("Bearer ").strip(), False
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers.get("Cookie", ""))
        except CookieError:
            return None, False  # a mangled Cookie header is no token; the other ways still count
        if TOKEN_COOKIE in cookie:
            return cookie[TOKEN_COOKIE].value, False
        return None, False


def same_origin(headers: Headers, public_url: str | None) -> bool:
    """A state-changing request must come from this console's own page (Origin = Host or public_url)."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False  # the browser itself says the request comes from another site
    origin = headers.get("Origin")
    if origin is None:
        # Browsers send Origin on every cross-site POST; a request without one comes from a
        # script or curl, which carries its own credentials anyway.
        return True
    parts = urlsplit(origin)
    allowed = {f"{parts.scheme}://{headers.get('Host', '')}"}
    if public_url:
        pub = urlsplit(public_url)
        allowed.add(f"{pub.scheme}://{pub.netloc}")
    return origin in allowed and parts.scheme in ("http", "https")
