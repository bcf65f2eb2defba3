"""What the tools' small web servers share (the zone page, the town console): loopback
checks, the address to show, and a threaded standard-library server started in the background."""

from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(host: str, port: int) -> str:
    """`http://host:port/` as a person opens it; a wildcard bind is shown as this machine's name."""
    shown = f"[{host}]" if ":" in host else host
    if shown in ("0.0.0.0", "[::]"):  # noqa: S104 (naming it, not binding it)
        shown = "localhost"
    return f"http://{shown}:{port}/"


def serve_in_background(
    host: str, port: int, handler: type[BaseHTTPRequestHandler], thread_name: str
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Bind (port 0: a free one, read back from the server) and serve on a daemon thread."""
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=thread_name, daemon=True)
    thread.start()
    return httpd, thread
