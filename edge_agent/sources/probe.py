"""Why an RTSP camera cannot be opened: one DESCRIBE request, answered in plain words.

OpenCV only reports that an open failed. The reason (wrong path, wrong
password, nothing listening) is what a person fixing the camera needs, so
after a failed open the reader (and `doctor`) asks the camera directly. Basic
and Digest (RFC 2617) logins are answered; the password never appears in a
result.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
from urllib.parse import unquote, urlsplit

from edge_agent.core.config import redact


def probe_rtsp(url: str, timeout_s: float) -> str:
    """Why an RTSP URL cannot be opened, in a few words, from one DESCRIBE request.

    OpenCV only says that the open failed; the reason (wrong path, wrong
    password, nothing listening) is what a person fixing the camera needs.
    The result never contains the password.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 554
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else ""
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    plain_url = f"{parts.scheme}://{netloc}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            status, reason, challenges = _describe(sock, plain_url, 1, None)
            if status == 401 and user is not None:
                auth = authorization_header(challenges, user, password, plain_url)
                if auth is not None:
                    status, reason, _ = _describe(sock, plain_url, 2, auth)
    except socket.gaierror as err:
        return f"cannot resolve host {host!r} ({err.strerror})"
    except ConnectionRefusedError:
        return f"connection refused by {netloc} (nothing listening)"
    except TimeoutError:
        return f"no answer from {netloc} within {timeout_s:g} s"
    except (OSError, ValueError) as err:
        return redact(f"cannot reach {netloc}: {err}")
    if status == 404:
        return f"RTSP 404 {reason}: no stream at path {parts.path or '/'!r} (wrong path?)"
    if status == 401:
        if user is None:
            return f"RTSP 401 {reason}: the camera wants a user and password"
        return f"RTSP 401 {reason}: wrong user or password for user {user!r}"
    if status == 200:
        return "the camera answers DESCRIBE but the stream could not be opened (unsupported codec?)"
    return f"RTSP {status} {reason}"


def _describe(
    sock: socket.socket, url: str, cseq: int, authorization: str | None
) -> tuple[int, str, list[str]]:
    """One DESCRIBE on `sock`: the status code, its reason and the WWW-Authenticate challenges."""
    lines = [f"DESCRIBE {url} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp", "User-Agent: edge-agent"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) <= 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("RTSP/") or not fields[1].isdigit():
        raise ValueError(f"not an RTSP answer: {status_line[:60]!r}")
    challenges = []
    for line in header_lines:
        key, _, value = line.partition(":")
        if key.strip().lower() == "www-authenticate":
            challenges.append(value.strip())
    return int(fields[1]), fields[2] if len(fields) > 2 else "", challenges


_AUTH_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def authorization_header(
    challenges: list[str],
    user: str,
    password: str,
    uri: str,
    method: str = "DESCRIBE",
    cnonce: str | None = None,
) -> str | None:
    """The Authorization value answering a camera's challenges (Digest preferred, else Basic)."""
    by_scheme = {c.strip().partition(" ")[0].lower(): c.strip().partition(" ")[2] for c in challenges}
    if "digest" not in by_scheme:
        if "basic" in by_scheme:
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return None
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _AUTH_PARAM_RE.finditer(by_scheme["digest"])}  # fmt: skip

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    header = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "auth" in [q.strip() for q in params.get("qop", "").split(",")]:
        cnonce = cnonce or os.urandom(8).hex()
        response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        header += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    header += f', response="{response}"'
    if "opaque" in params:
        header += f', opaque="{params["opaque"]}"'
    return header
