"""Camera and broker URLs: parsed with a real URL parser, credentials percent-decoded, never echoed.

A password travels in the URL's user-info (`rtsp://user:password@host/path`). Characters
that end the user-info or start another part of a URL must be percent-encoded there, as in
any URL: `#` as `%23`, `/` as `%2F`, `?` as `%3F`, `@` as `%40`, `:` as `%3A`, `%` as `%25`
(`rtsp://admin:p%23ss@cam/stream` is the password `p#ss`). The agent decodes them and hands
FFmpeg a URL with the credentials encoded again, so a raw `@` in a password (unambiguous,
the last `@` ends the user-info) works too. A raw `#`, `/` or `?` cannot be told from the
rest of the URL; such a URL is refused with that hint, without the password in the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
BROKER_SCHEMES = ("mqtt", "mqtts")
ENCODE_HINT = (
    "a user or password with '#', '/', '?' or '@' must be percent-encoded: "
    "# as %23, / as %2F, ? as %3F, @ as %40 (the password p#ss is written p%23ss)"
)

_CRED_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:'\"]*)(?::[^\s'\"]*)?@")
_HOST_RE = re.compile(r"^[A-Za-z0-9._~-]+$|^\[[0-9A-Fa-f:.]+\]$")


def redact(text: str) -> str:
    """Hide passwords in URLs: rtsp://admin:secret@host -> rtsp://admin:***@host.

    The password runs to the last `@` before a space or quote, so a raw `#`, `/`, `?` or `@`
    in it is hidden as well; hiding a little too much is the safe side.
    """
    return _CRED_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", text)


@dataclass(frozen=True)
class NetUrl:
    scheme: str
    host: str
    port: int | None
    username: str | None  # percent-decoded
    password: str | None = None  # percent-decoded; never shown
    rest: str = ""  # path, query and fragment as written

    def for_ffmpeg(self) -> str:
        """The URL with the credentials encoded again, as FFmpeg reads them."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = self.host if ":" not in self.host else f"[{self.host}]"
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{auth}{host}{port}{self.rest}"


class UrlError(ValueError):
    """A URL that cannot be used; the message never holds its password."""


def is_file_url(url: str) -> bool:
    return url.startswith("file://") or "://" not in url


def file_url_path(url: str) -> Path | None:
    """The local path when `url` names a file (a path or file://), else None."""
    if url.startswith("file://"):
        return Path(unquote(url.removeprefix("file://")))
    if "://" in url:
        return None
    return Path(url)


def parse_net_url(url: str, schemes: tuple[str, ...]) -> NetUrl:
    """Split a network URL; raises UrlError with a hint (no password) when it is not usable."""
    if any(c.isspace() for c in url) or any(ord(c) < 32 for c in url):
        raise UrlError("a URL cannot contain spaces or control characters (percent-encode them: %20)")
    scheme, sep, after = url.partition("://")
    if not sep or scheme.lower() not in schemes:
        raise UrlError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
    # The user-info ends at the last '@' before the path; a raw '@' in a password is fine.
    authority_end = len(after)
    for ch in "/?#":
        pos = after.find(ch)
        if pos != -1:
            authority_end = min(authority_end, pos)
    authority, rest = after[:authority_end], after[authority_end:]
    userinfo, at, hostport = authority.rpartition("@")
    # A stream URL has no fragment, and an '@' after the host means the user-info was cut short
    # by a raw '#', '/' or '?' in the password: refuse rather than dial a wrong host.
    if "#" in url or (not at and "@" in rest):
        raise UrlError(ENCODE_HINT)
    username = password = None
    if at:
        user_raw, colon, pass_raw = userinfo.partition(":")
        username = unquote(user_raw)
        password = unquote(pass_raw) if colon else None
    try:
        parts = urlsplit(f"{scheme}://{hostport}")
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        # The port did not parse: often the rest of a password cut by a raw '#', '/' or '?'.
        raise UrlError(
            "the port must be a number from 1 to 65535"
            + ("" if at else f"; {ENCODE_HINT}" if ":" in hostport and "@" in url else "")
        ) from None
    if not host:
        raise UrlError("the URL names no host")
    if not _HOST_RE.match(host if ":" not in host else f"[{host}]"):
        raise UrlError("the host name has characters a host name cannot have")
    if port == 0:
        raise UrlError("the port must be a number from 1 to 65535")
    return NetUrl(scheme.lower(), host, port, username, password, rest)


def camera_url_problem(url: str) -> str | None:
    """Why a camera URL cannot be used (never with its password), or None. Files are checked later."""
    if not url:
        return "the camera URL is empty"
    if is_file_url(url):
        return None
    try:
        parse_net_url(url, STREAM_SCHEMES)
    except UrlError as err:
        return str(err)
    return None


def ffmpeg_url(url: str) -> str:
    """What FFmpeg is given for a camera URL: credentials decoded and encoded again; files as they are."""
    if is_file_url(url):
        return url
    try:
        return parse_net_url(url, STREAM_SCHEMES).for_ffmpeg()
    except UrlError:
        return url  # validation refused it already; the open then fails with a redacted reason
