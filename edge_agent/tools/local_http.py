"""The zone page's threaded standard-library server, started in the background (loopback
checks and the address to show are in `core/net.py`)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_in_background(
    host: str, port: int, handler: type[BaseHTTPRequestHandler], thread_name: str
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Bind (port 0: a free one, read back from the server) and serve on a daemon thread."""
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=thread_name, daemon=True)
    thread.start()
    return httpd, thread
