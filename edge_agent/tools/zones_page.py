"""`edge-agent zones`: a local page to draw a camera's zones, lines and masks on its real image.

The page edits the config FILE, not the loaded config: the file is read and
written with a round-trip YAML parser so that comments, key order, flow style
and `${VAR}` references survive a save. A save is validated as a whole
(`parse_config` + `check_config`) before anything is written; the previous
file is kept as `<config>.bak` and the new one replaces it atomically, so the
running service never reads a half-written file.

The server listens on 127.0.0.1 unless told otherwise. Any other address puts
the page on the site's network, where it can rewrite the config: it then
needs a token on every request (query `?token=`, header or the cookie the
page sets after the first authenticated request).
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edge_agent.app.config import parse_config
from edge_agent.core.config import Config, ConfigError, Problem, redact
from edge_agent.core.net import base_url, is_loopback
from edge_agent.tools.config_edit import (
    DECIMALS,
    VAR_RE,
    SaveError,
    apply_shapes,
    camera_node,
    read_shapes,
    revision_of,
    round_trip,
    validate_text,
    validation_env,
    write_atomically,
)
from edge_agent.tools.local_http import serve_in_background

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
SNAPSHOT_TTL_S = 3.0  # one camera frame serves the image and the detections drawn over it
MAX_BODY_BYTES = 1_000_000
MAX_JSON_DEPTH = 16  # the save payload nests 5 deep (zones -> name -> polygon -> point -> x)
TOKEN_HEADER = "X-Edge-Agent-Token"  # noqa: S105 (a header name, not a secret)
TOKEN_COOKIE = "edge_agent_token"  # noqa: S105 (a cookie name)
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(html|js|css)$")
_CONTENT_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript", "css": "text/css"}


def json_depth(body: bytes) -> int:
    """How deep `[` and `{` nest in a JSON text (outside strings), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class ZonesServer:
    """The page's HTTP server on its own thread; `start()`, `url`, `stop()`."""

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        camera_id: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8090,
        token: str | None = None,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"binding to {host} puts the zone page on the network, where it can rewrite the "
                "config: give --token SECRET (or --token auto) and open the printed URL"
            )
        self.config_path = Path(os.path.realpath(config_path))
        self.backup_path = self.config_path.with_name(self.config_path.name + ".bak")
        self.host, self.port, self.token = host, port, token or None
        self._lock = threading.Lock()  # one save at a time; frames and the detector too
        self._frames: dict[str, tuple[float, np.ndarray]] = {}
        self._detector: Any = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        cfg = self.load()
        self.camera_id = camera_id or cfg.cameras[0].id
        cfg.camera(self.camera_id)  # ConfigError naming the known cameras

    # the config, as the page sees it

    def read_text(self) -> str:
        try:
            return self.config_path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError([Problem(str(self.config_path), f"cannot read: {err.strerror}")]) from err

    def load(self) -> Config:
        text = self.read_text()
        return parse_config(text, validation_env(text), source=str(self.config_path))

    def shapes(self, camera_id: str) -> dict[str, Any]:
        text = self.read_text()
        out = read_shapes(text, camera_id)
        out["revision"] = revision_of(text)
        return out

    def save(self, payload: Any) -> dict[str, Any]:
        camera_id = payload.get("camera") if isinstance(payload, Mapping) else None
        if not isinstance(camera_id, str):
            raise SaveError(HTTPStatus.BAD_REQUEST, [Problem("camera", "which camera? (missing)")])
        with self._lock:
            text = self.read_text()
            rev = payload.get("revision")
            if rev is not None and rev != revision_of(text):
                raise SaveError(
                    HTTPStatus.CONFLICT,
                    [Problem("", "the config file changed since the page loaded it: reload the page")],
                )
            new_text = apply_shapes(text, camera_id, payload)
            validate_text(new_text, source=str(self.config_path))
            if new_text != text:
                write_atomically(self.config_path, new_text, self.backup_path)
                logger.info("saved the zones of camera %s to %s", camera_id, self.config_path)
        return {"ok": True, "revision": revision_of(new_text), "changed": new_text != text}

    # the camera

    def frame(self, camera_id: str) -> np.ndarray:
        from edge_agent.sources import SourceError
        from edge_agent.sources.capture import grab_frame

        now = time.monotonic()
        cached = self._frames.get(camera_id)
        if cached is not None and now - cached[0] < SNAPSHOT_TTL_S:
            return cached[1]
        text = self.read_text()
        cam = self.load().camera(camera_id)
        raw_url = str(camera_node(round_trip(text)[1], camera_id).get("url", ""))
        missing = [v for v in VAR_RE.findall(raw_url) if v not in os.environ]
        if missing:
            raise SourceError(
                f"the camera URL needs the environment variable(s) {', '.join(missing)}: start "
                "`edge-agent zones` with the service's environment (set -a; . /etc/edge-agent/env)"
            )
        img = grab_frame(cam.url, cam.open_timeout_s)
        self._frames[camera_id] = (time.monotonic(), img)
        return img

    def detections(self, camera_id: str) -> dict[str, Any]:
        from edge_agent.core.geometry import to_pixels
        from edge_agent.core.masks import black_out
        from edge_agent.pipeline.detect.onnx import load_detector

        cfg = self.load()
        cam = cfg.camera(camera_id)
        img = self.frame(camera_id)
        h, w = img.shape[:2]
        # the agent blacks out the masks before detection; show what it would see
        gated = black_out(img, [to_pixels(m, w, h) for m in cam.masks]) if cam.masks else img
        with self._lock:
            if self._detector is None:
                self._detector = load_detector(cfg.model)
            t0 = time.perf_counter()
            dets = self._detector.detect(gated)
            ms = (time.perf_counter() - t0) * 1000
            labels = self._detector.labels
        scale = np.array([w, h, w, h], dtype=np.float64)
        boxes = [
            {
                "box": [round(float(v), DECIMALS) for v in (dets.xyxy[i] / scale)],
                "label": labels[int(c)] if 0 <= int(c) < len(labels) else str(int(c)),
                "score": round(float(dets.score[i]), 3),
            }
            for i, c in enumerate(dets.class_id)
        ]
        return {"camera": camera_id, "width": w, "height": h, "ms": round(ms, 1), "detections": boxes}

    # the HTTP side

    @property
    def url(self) -> str:
        base = base_url(self.host, self.port)
        return f"{base}?token={self.token}" if self.token else base

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd, self._thread = serve_in_background(self.host, self.port, handler, "zones-page")
        self.port = int(self._httpd.server_address[1])
        logger.info("zone page on %s:%d for %s", self.host, self.port, self.config_path)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


class _Handler(BaseHTTPRequestHandler):
    app: ZonesServer
    server_version = "edge-agent-zones"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    # responses

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        if self.app.token and self._token_ok():
            self.send_header(
                "Set-Cookie", f"{TOKEN_COOKIE}={self.app.token}; HttpOnly; SameSite=Strict; Path=/"
            )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _problems(self, status: int, problems: Sequence[Problem]) -> None:
        self._json(
            status,
            {
                "ok": False,
                "problems": [{"path": p.path, "message": redact(p.message)} for p in problems],
            },
        )

    # access

    def _presented_token(self) -> str | None:
        query = parse_qs(urlsplit(self.path).query)
        if query.get("token"):
            return query["token"][0]
        if self.headers.get(TOKEN_HEADER):
            return self.headers[TOKEN_HEADER]
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth.removeprefix("Bearer ").strip()
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        return cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None

    def _token_ok(self) -> bool:
        given = self._presented_token()
        return given is not None and hmac.compare_digest(given.encode(), (self.app.token or "").encode())

    def _allowed(self) -> bool:
        if self.app.token:
            if self._presented_token() is None:
                self._problems(
                    HTTPStatus.UNAUTHORIZED, [Problem("", "a token is needed: open the printed URL")]
                )
                return False
            if not self._token_ok():
                self._problems(HTTPStatus.FORBIDDEN, [Problem("", "wrong token")])
                return False
            return True
        # Without a token only loopback names may reach the page: a web page elsewhere
        # cannot point a DNS name at 127.0.0.1 and post to it.
        host = urlsplit("//" + self.headers.get("Host", "")).hostname or ""
        if not is_loopback(host):
            self._problems(HTTPStatus.FORBIDDEN, [Problem("", f"unexpected Host header {host!r}")])
            return False
        return True

    def _same_origin(self) -> bool:
        """A state-changing request must come from the page itself: a browser sends `Origin`
        (and `Sec-Fetch-Site`) with every POST, and both must name this very page. A client
        that sends neither (curl, a script) is not a browser page and passed the token or
        loopback check above."""
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            self._problems(HTTPStatus.FORBIDDEN, [Problem("", f"cross-origin request from {origin[:80]!r}")])
            return False
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            self._problems(HTTPStatus.FORBIDDEN, [Problem("", f"cross-site request ({site[:40]})")])
            return False
        return True

    def _body(self) -> bytes | None:
        """The request body, its length checked before a byte is read; None (answered) if refused."""
        if self.headers.get("Transfer-Encoding"):
            self._problems(HTTPStatus.LENGTH_REQUIRED, [Problem("", "send a Content-Length, not chunks")])
            return None
        text = self.headers.get("Content-Length")
        if text is None:
            self._problems(HTTPStatus.LENGTH_REQUIRED, [Problem("", "a Content-Length is needed")])
            return None
        if not text.strip().isdigit():
            self._problems(HTTPStatus.BAD_REQUEST, [Problem("", "Content-Length must be a byte count")])
            return None
        length = int(text)
        if length > MAX_BODY_BYTES:
            self._problems(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, [Problem("", "request too large")])
            return None
        return self.rfile.read(length)

    def _camera(self) -> str:
        query = parse_qs(urlsplit(self.path).query)
        return query.get("camera", [self.app.camera_id])[0]

    # routes

    def do_GET(self) -> None:
        from edge_agent.pipeline.detect.models import ModelError
        from edge_agent.sources import SourceError

        if not self._allowed():
            return
        route = urlsplit(self.path).path
        try:
            if route in ("/", "/index.html"):
                self._static("zones.html")
            elif route.startswith("/static/"):
                self._static(route.removeprefix("/static/"))
            elif route == "/api/cameras":
                cfg = self.app.load()
                self._json(200, {"cameras": [c.id for c in cfg.cameras], "default": self.app.camera_id})
            elif route == "/api/config":
                self._json(200, self.app.shapes(self._camera()))
            elif route == "/api/snapshot.jpg":
                ok, jpg = cv2.imencode(".jpg", self.app.frame(self._camera()), [cv2.IMWRITE_JPEG_QUALITY, 85])
                if not ok:
                    raise SourceError("cannot encode the frame as JPEG")
                self._send(200, jpg.tobytes(), "image/jpeg")
            elif route == "/api/detections":
                self._json(200, self.app.detections(self._camera()))
            else:
                self._problems(HTTPStatus.NOT_FOUND, [Problem("", f"no page {route}")])
        except SaveError as err:
            self._problems(err.status, err.problems)
        except ConfigError as err:
            self._problems(HTTPStatus.BAD_REQUEST, err.problems)
        except (SourceError, ModelError, OSError) as err:
            logger.warning("%s: %s", route, redact(str(err)))
            self._problems(HTTPStatus.BAD_GATEWAY, [Problem("", str(err))])

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._allowed() or not self._same_origin():
            return
        route = urlsplit(self.path).path
        if route != "/api/zones":
            self._problems(HTTPStatus.NOT_FOUND, [Problem("", f"no page {route}")])
            return
        # JSON only: a form on another site cannot send it without a CORS preflight we never answer
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._problems(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, [Problem("", "send application/json")])
            return
        body = self._body()
        if body is None:
            return
        if json_depth(body) > MAX_JSON_DEPTH:
            self._problems(HTTPStatus.BAD_REQUEST, [Problem("", f"JSON nested deeper than {MAX_JSON_DEPTH}")])
            return
        try:
            payload = json.loads(body or b"null")
            self._json(200, self.app.save(payload))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            self._problems(HTTPStatus.BAD_REQUEST, [Problem("", f"malformed JSON: {str(err)[:120]}")])
        except SaveError as err:
            self._problems(err.status, err.problems)
        except ConfigError as err:
            self._problems(HTTPStatus.BAD_REQUEST, err.problems)
        except OSError as err:
            logger.error("cannot save %s: %s", self.app.config_path, err)
            self._problems(HTTPStatus.INTERNAL_SERVER_ERROR, [Problem("", f"cannot write the config: {err}")])
        except (
            Exception
        ) as err:  # a payload no check foresaw: a 400 with the reason, never a dropped connection
            logger.warning("zone save refused: %s: %s", type(err).__name__, err)
            self._problems(
                HTTPStatus.BAD_REQUEST, [Problem("", f"cannot use this request: {type(err).__name__}")]
            )

    def _static(self, name: str) -> None:
        path = STATIC_DIR / name
        if not _STATIC_NAME.match(name) or not path.is_file():
            self._problems(HTTPStatus.NOT_FOUND, [Problem("", f"no file {name}")])
            return
        self._send(200, path.read_bytes(), _CONTENT_TYPES[name.rsplit(".", 1)[1]])


# --- command line ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="CFG", help="the config file to edit in place (default: as for every command)"
    )
    parser.add_argument("--camera", metavar="ID", help="camera to open first (default: the first)")
    parser.add_argument("--port", type=int, default=8090, help="port (default %(default)s; 0 picks one)")
    parser.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default %(default)s); any other needs --token",
    )
    parser.add_argument(
        "--token",
        metavar="T",
        help="secret every request must carry; 'auto' makes one and prints it. Required off loopback",
    )


def _lan_address() -> str | None:
    """This box's address on its default route (no packet is sent), to print a usable URL."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            return str(sock.getsockname()[0])
    except OSError as err:
        logger.debug("no LAN address to show: %s", err)
        return None


def run(args: argparse.Namespace) -> int:
    """`edge-agent zones`: serve the page until Ctrl-C. CLI code: it prints for the installer."""
    token = secrets.token_urlsafe(16) if args.token == "auto" else args.token  # noqa: S105
    try:
        server = ZonesServer(args.config, args.camera, args.bind, args.port, token)
        server.start()
    except ConfigError as err:
        for p in err.problems:
            print(redact(str(p)), file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"edge-agent: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"edge-agent: cannot listen on {args.bind}:{args.port}: {err.strerror}", file=sys.stderr)
        return 1
    print(f"zone page for {server.config_path}: open {server.url}", flush=True)
    if not is_loopback(server.host):
        lan = _lan_address() if server.host in ("0.0.0.0", "::") else None  # noqa: S104
        if lan:
            print(f"  from another machine: http://{lan}:{server.port}/?token={server.token}", flush=True)
        print("  the page is reachable from the network: keep the token to yourself", flush=True)
    print("  saves keep the previous file as " + str(server.backup_path) + "; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
