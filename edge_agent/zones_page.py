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
import hashlib
import hmac
import io
import ipaddress
import json
import logging
import os
import re
import secrets
import sys
import tempfile
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
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from edge_agent.config import Config, ConfigError, Problem, check_config, parse_config, redact

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
SNAPSHOT_TTL_S = 3.0  # one camera frame serves the image and the detections drawn over it
MAX_BODY_BYTES = 1_000_000
DECIMALS = 4
TOKEN_HEADER = "X-Edge-Agent-Token"  # noqa: S105 (a header name, not a secret)
TOKEN_COOKIE = "edge_agent_token"  # noqa: S105 (a cookie name)
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(html|js|css)$")
_CONTENT_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript", "css": "text/css"}
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class SaveError(Exception):
    """A save the page must show to the installer: an HTTP status and the problems."""

    def __init__(self, status: int, problems: Sequence[Problem]) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# --- the config file ---------------------------------------------------------------


def _round_trip(text: str) -> tuple[YAML, Any]:
    """A YAML instance set up to write `text` back as it was, and the loaded document."""
    try:
        _, seq_indent, dash_offset = load_yaml_guess_indent(text)
        yaml = YAML()
        yaml.preserve_quotes = True
        yaml.width = 4096  # never wrap a long polygon onto several lines
        yaml.indent(mapping=2, sequence=seq_indent or 2, offset=dash_offset or 0)
        return yaml, yaml.load(text)
    except YAMLError as err:
        raise SaveError(HTTPStatus.BAD_REQUEST, [Problem("config", f"malformed YAML: {err}")]) from err


def revision_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _camera_node(doc: Any, camera_id: str) -> CommentedMap:
    cameras = doc.get("cameras") if isinstance(doc, Mapping) else None
    for cam in cameras or []:
        if isinstance(cam, CommentedMap) and str(cam.get("id")) == camera_id:
            return cam
    raise SaveError(HTTPStatus.NOT_FOUND, [Problem("camera", f"no camera with id {camera_id!r}")])


def _points(value: Any) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in value or []]


def read_shapes(text: str, camera_id: str) -> dict[str, Any]:
    """A camera's zones, lines and masks as written in the file (relative coordinates)."""
    _, doc = _round_trip(text)
    cam = _camera_node(doc, camera_id)
    zones = cam.get("zones") or {}
    lines = cam.get("lines") or {}
    return {
        "camera": camera_id,
        "zones": {str(k): {"polygon": _points(v.get("polygon"))} for k, v in zones.items()},
        "lines": {str(k): {"points": _points(v.get("points"))} for k, v in lines.items()},
        "masks": [_points(m) for m in cam.get("masks") or []],
    }


def _parse_points(value: Any, where: str, problems: list[Problem]) -> list[list[float]] | None:
    if not isinstance(value, list):
        problems.append(Problem(where, "expected a list of [x, y] points"))
        return None
    out = []
    for i, p in enumerate(value):
        ok = isinstance(p, list) and len(p) == 2
        ok = ok and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
        if not ok:
            problems.append(Problem(f"{where}[{i}]", f"expected [x, y] numbers, got {p!r}"))
            return None
        out.append([round(float(p[0]), DECIMALS), round(float(p[1]), DECIMALS)])
    return out


def _parse_named(
    payload: Mapping[str, Any], key: str, inner: str, problems: list[Problem]
) -> dict[str, list[list[float]]]:
    value = payload.get(key, {})
    if not isinstance(value, Mapping):
        problems.append(Problem(key, f"expected a mapping of name to {{{inner}: [...]}}"))
        return {}
    out = {}
    for name, shape in value.items():
        if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 64:
            problems.append(Problem(f"{key}.{name}", "a name is 1 to 64 characters, no outer spaces"))
            continue
        pts = _parse_points(
            shape.get(inner) if isinstance(shape, Mapping) else None, f"{key}.{name}", problems
        )
        if pts is not None:
            out[name] = pts
    return out


def parse_shapes(payload: Any) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """The page's JSON (`zones`, `lines`, `masks`), checked for shape and rounded to 4 decimals."""
    if not isinstance(payload, Mapping):
        raise SaveError(HTTPStatus.BAD_REQUEST, [Problem("", "expected a JSON object")])
    problems: list[Problem] = []
    zones = _parse_named(payload, "zones", "polygon", problems)
    lines = _parse_named(payload, "lines", "points", problems)
    masks_in = payload.get("masks", [])
    masks = []
    if not isinstance(masks_in, list):
        problems.append(Problem("masks", "expected a list of polygons"))
    else:
        for i, m in enumerate(masks_in):
            pts = _parse_points(m, f"masks[{i}]", problems)
            if pts is not None:
                masks.append(pts)
    if problems:
        raise SaveError(HTTPStatus.BAD_REQUEST, problems)
    return zones, lines, masks


def _flow(items: list[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _set_points(seq: Any, points: list[list[float]]) -> CommentedSeq:
    """Update a sequence of points in place: untouched points keep their text and comments."""
    if not isinstance(seq, CommentedSeq):
        return _flow([_flow(p) for p in points])
    for i, p in enumerate(points):
        if i < len(seq):
            old = seq[i]
            same = isinstance(old, list) and len(old) == 2 and [float(c) for c in old] == p
            if not same:
                seq[i] = _flow(p)
        else:
            seq.append(_flow(p))
    del seq[len(points) :]
    return seq


def _put_key(cam: CommentedMap, key: str, value: Any) -> None:
    if key in cam:
        cam[key] = value
    elif "rules" in cam:
        cam.insert(list(cam.keys()).index("rules"), key, value)
    else:
        cam[key] = value


def _set_named(cam: CommentedMap, key: str, inner: str, shapes: dict[str, list[list[float]]]) -> None:
    node = cam.get(key)
    if not isinstance(node, CommentedMap):
        if not shapes and key not in cam:
            return
        node = CommentedMap()
        _put_key(cam, key, node)
    for name in [k for k in node if str(k) not in shapes]:
        del node[name]
    # new entries follow the style of the ones already there; one line each by default
    flow = all(isinstance(v, CommentedMap) and v.fa.flow_style() for v in node.values()) if node else True
    for name, pts in shapes.items():
        entry = node.get(name)
        if isinstance(entry, CommentedMap):
            entry[inner] = _set_points(entry.get(inner), pts)
        else:
            entry = CommentedMap([(inner, _set_points(None, pts))])
            if flow:
                entry.fa.set_flow_style()
            node[name] = entry
    if not node:
        # a fresh `{}`: comments the old entries carried would dangle around it
        empty = CommentedMap()
        empty.fa.set_flow_style()
        cam[key] = empty
        slot = cam.ca.items.get(key)
        if slot and len(slot) > 3:
            slot[3] = None


def apply_shapes(text: str, camera_id: str, payload: Any) -> str:
    """The config text with one camera's zones, lines and masks replaced by the page's."""
    zones, lines, masks = parse_shapes(payload)
    yaml, doc = _round_trip(text)
    cam = _camera_node(doc, camera_id)
    _set_named(cam, "zones", "polygon", zones)
    _set_named(cam, "lines", "points", lines)
    if masks or "masks" in cam:
        old = cam.get("masks")
        seq = old if isinstance(old, CommentedSeq) else CommentedSeq()
        for i, m in enumerate(masks):
            if i < len(seq):
                seq[i] = _set_points(seq[i], m)
            else:
                seq.append(_set_points(None, m))
        del seq[len(masks) :]
        if not seq:
            seq = CommentedSeq()
            seq.fa.set_flow_style()
        _put_key(cam, "masks", seq)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def validation_env(text: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to validate with: a variable the shell lacks gets a stand-in value.

    The installer's shell rarely holds the service's secrets (camera passwords in
    /etc/edge-agent/env); a missing one is not something a zone edit can fix.
    """
    out = dict(os.environ if env is None else env)
    for name in _VAR_RE.findall(text):
        out.setdefault(name, f"unset-{name}")
    return out


def known_labels(cfg: Config) -> list[str] | None:
    """The model's labels, or None (label checks skipped) when the model cannot be found here."""
    from edge_agent.models import ModelError, load_manifest, resolve_model

    try:
        if cfg.model.path is None and cfg.model.name is not None:
            return list(load_manifest(cfg.model.name).labels)
        return list(resolve_model(cfg.model).labels)
    except ModelError as err:
        logger.warning("label checks skipped: %s", err)
        return None


def validate_text(text: str, source: str = "config") -> Config:
    try:
        cfg = parse_config(text, validation_env(text), source=source)
    except ConfigError as err:
        raise SaveError(HTTPStatus.BAD_REQUEST, err.problems) from err
    problems = check_config(cfg, known_labels(cfg))
    if problems:
        raise SaveError(HTTPStatus.BAD_REQUEST, problems)
    return cfg


def write_atomically(path: Path, text: str, backup: Path | None) -> None:
    """Write `text` to `path` through a temp file and a rename, keeping the old file's mode and owner."""
    st = path.stat() if path.exists() else None
    mode = st.st_mode & 0o7777 if st else 0o600
    owner = (st.st_uid, st.st_gid) if st else None
    if backup is not None and path.exists():
        _write_replace(backup, path.read_bytes(), mode, owner)
    _write_replace(path, text.encode("utf-8"), mode, owner)


def _write_replace(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        # run with sudo, the new file would belong to root; the service may need to own it
        if owner is not None and hasattr(os, "geteuid") and os.geteuid() == 0:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the server --------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        from edge_agent.snapshot import grab_frame
        from edge_agent.sources import SourceError

        now = time.monotonic()
        cached = self._frames.get(camera_id)
        if cached is not None and now - cached[0] < SNAPSHOT_TTL_S:
            return cached[1]
        text = self.read_text()
        cam = self.load().camera(camera_id)
        raw_url = str(_camera_node(_round_trip(text)[1], camera_id).get("url", ""))
        missing = [v for v in _VAR_RE.findall(raw_url) if v not in os.environ]
        if missing:
            raise SourceError(
                f"the camera URL needs the environment variable(s) {', '.join(missing)}: start "
                "`edge-agent zones` with the service's environment (set -a; . /etc/edge-agent/env)"
            )
        img = grab_frame(cam.url, cam.open_timeout_s)
        self._frames[camera_id] = (time.monotonic(), img)
        return img

    def detections(self, camera_id: str) -> dict[str, Any]:
        from edge_agent.detect.onnx import load_detector
        from edge_agent.evidence import black_out
        from edge_agent.geometry import to_pixels

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
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):  # noqa: S104 (a wildcard bind is shown as this machine's name)
            host = "localhost"
        base = f"http://{host}:{self.port}/"
        return f"{base}?token={self.token}" if self.token else base

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="zones-page", daemon=True)
        self._thread.start()
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

    def _camera(self) -> str:
        query = parse_qs(urlsplit(self.path).query)
        return query.get("camera", [self.app.camera_id])[0]

    # routes

    def do_GET(self) -> None:
        from edge_agent.models import ModelError
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
        if not self._allowed():
            return
        route = urlsplit(self.path).path
        if route != "/api/zones":
            self._problems(HTTPStatus.NOT_FOUND, [Problem("", f"no page {route}")])
            return
        # JSON only: a form on another site cannot send it without a CORS preflight we never answer
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._problems(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, [Problem("", "send application/json")])
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._problems(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, [Problem("", "request too large")])
            return
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
            self._json(200, self.app.save(payload))
        except json.JSONDecodeError as err:
            self._problems(HTTPStatus.BAD_REQUEST, [Problem("", f"malformed JSON: {err}")])
        except SaveError as err:
            self._problems(err.status, err.problems)
        except ConfigError as err:
            self._problems(HTTPStatus.BAD_REQUEST, err.problems)
        except OSError as err:
            logger.error("cannot save %s: %s", self.app.config_path, err)
            self._problems(HTTPStatus.INTERNAL_SERVER_ERROR, [Problem("", f"cannot write the config: {err}")])

    def _static(self, name: str) -> None:
        path = STATIC_DIR / name
        if not _STATIC_NAME.match(name) or not path.is_file():
            self._problems(HTTPStatus.NOT_FOUND, [Problem("", f"no file {name}")])
            return
        self._send(200, path.read_bytes(), _CONTENT_TYPES[name.rsplit(".", 1)[1]])


# --- command line ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="CFG", help="the config file to edit in place")
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
