"""The JSON Schemas of the MQTT payloads (the `mqtt/` directory) and a validator.

The schemas are the published contract; the tests check every payload the
agent publishes against them and `edge-agent listen` checks what it receives.
They ship inside the package (`core/package_data.py`), so an installed wheel has them.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from edge_agent.core.package_data import package_dir

SCHEMA_NAMES = (
    "event",
    "status",
    "camera-status",
    "stats",
    "count",
    "receipt",
    "platform-status",
    "command",
    "command-result",
)
_ENV_DIR = "EDGE_AGENT_MQTT_DIR"


def schema_dir() -> Path:
    """Where the schemas live: `$EDGE_AGENT_MQTT_DIR` (a platform trying a draft), else the packaged
    `mqtt/` (in a source checkout, the repository's `mqtt/` itself)."""
    env = os.environ.get(_ENV_DIR)
    return Path(env) if env else package_dir("mqtt")


@cache
def _load(name: str, directory: str) -> dict[str, Any]:
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; expected one of: {', '.join(SCHEMA_NAMES)}")
    path = Path(directory) / f"{name}.schema.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise FileNotFoundError(f"cannot read the {name} schema {path}: {err.strerror}") from err
    Draft202012Validator.check_schema(data)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a schema must be a JSON object")
    return data


def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema `mqtt/<name>.schema.json` (name: event, status, camera-status, stats)."""
    return _load(name, str(schema_dir()))


@cache
def _validator(name: str, directory: str) -> Draft202012Validator:
    return Draft202012Validator(_load(name, directory), format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(name: str, payload: Any) -> list[str]:
    """Every way `payload` breaks schema `name`, as `path: message` lines; empty when valid."""
    validator = _validator(name, str(schema_dir()))
    errors = sorted(validator.iter_errors(payload), key=lambda e: (list(e.absolute_path), e.message))
    out = []
    for err in errors:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        out.append(f"{where.lstrip('.') or '(top level)'}: {err.message}")
    return out
