"""Edits of the zones, lines and masks in a config FILE that keep its comments and layout.

The raw YAML is edited with a round-trip parser (`${VAR}` references stay as
written), the result is validated like `edge-agent validate` before anything
is written, and the file is replaced atomically with a backup of the previous
version. Used by the zone drawing page (`zones_page.py`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from edge_agent.core.config import Config, Problem
from edge_agent.core.files import FILE_MODE

logger = logging.getLogger(__name__)

DECIMALS = 4
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SaveError(Exception):
    """A save the page must show to the installer: an HTTP status and the problems."""

    def __init__(self, status: int, problems: Sequence[Problem]) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# --- the config file ---------------------------------------------------------------


def round_trip(text: str) -> tuple[YAML, Any]:
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


def camera_node(doc: Any, camera_id: str) -> CommentedMap:
    cameras = doc.get("cameras") if isinstance(doc, Mapping) else None
    for cam in cameras or []:
        if isinstance(cam, CommentedMap) and str(cam.get("id")) == camera_id:
            return cam
    raise SaveError(HTTPStatus.NOT_FOUND, [Problem("camera", f"no camera with id {camera_id!r}")])


def _points(value: Any) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in value or []]


def read_shapes(text: str, camera_id: str) -> dict[str, Any]:
    """A camera's zones, lines and masks as written in the file (relative coordinates)."""
    _, doc = round_trip(text)
    cam = camera_node(doc, camera_id)
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
    yaml, doc = round_trip(text)
    cam = camera_node(doc, camera_id)
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
    for name in VAR_RE.findall(text):
        out.setdefault(name, f"unset-{name}")
    return out


def validate_text(text: str, source: str = "config") -> Config:
    """The checks of `validate` (app/checks.py) on the text to be saved. The model's file and the
    box's paths are the service's business, not the page's: only the labels are checked."""
    from edge_agent.app.checks import check_text

    checked = check_text(text, validation_env(text), source, verify_model=False, environment=False)
    if checked.cfg is None:
        raise SaveError(HTTPStatus.BAD_REQUEST, checked.problems)
    return checked.cfg


def write_atomically(path: Path, text: str, backup: Path | None) -> None:
    """Write `text` to `path` through a temp file and a rename, keeping the old file's mode and owner.

    A new config is 0600; the backup is 0600 whatever the config's mode (only the owner needs
    it, and it holds what the config holds); neither depends on the umask.
    """
    st = path.stat() if path.exists() else None
    mode = st.st_mode & 0o7777 if st else FILE_MODE
    owner = (st.st_uid, st.st_gid) if st else None
    if backup is not None and path.exists():
        _write_replace(backup, path.read_bytes(), FILE_MODE, owner)
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
