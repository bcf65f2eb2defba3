"""One loader, one truth: every check a config must pass before `run` or `replay` uses it.

`validate`, `run`, `replay`, SIGHUP reload, doctor and the zones page all read a config
through `check_text`/`check_file`, so nothing `validate` accepts can fail at start: the
schema (ids, time zones, URLs, finite bounded numbers), cross-references, the model (its
manifest, its file, its sha256) and the disk (outbox and evidence paths creatable, camera
files present). Every problem of a file comes back in one list, in file order.

A camera file that is missing is a problem for `validate` (it is a typo until proven
otherwise), but `run` and a reload start without it: the camera goes offline with the
reason and is retried, since a file on a mounted disk may come back and the other
cameras must not wait for it (`camera_files=False`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge_agent.app.config import closed_models, rule_models
from edge_agent.core.config import Config, ConfigError, EvidenceConfig, ModelConfig, OutboxConfig, Problem
from edge_agent.core.config_load import Parsed, check_refs, parse_text, read_config_text, shown
from edge_agent.core.urls import file_url_path
from edge_agent.pipeline.detect.models import ModelError, load_manifest, resolve_model


@dataclass
class Checked:
    cfg: Config | None  # None when any problem was found
    problems: list[Problem]


def _model_problems(data: Any, parsed: Parsed, verify_file: bool) -> list[str] | None:
    """The model's labels (None if unknown), adding the model's problem to `parsed`."""
    section = data.get("model") if isinstance(data, dict) else None
    try:
        model = ModelConfig.model_validate(section if section is not None else {})
    except ValidationError:
        return None  # the schema's problems name it already
    try:
        if model.path is None and model.name is not None:
            labels = list(load_manifest(model.name).labels)
            if verify_file:
                resolve_model(model)  # the file is there and its sha256 is the manifest's
            return labels
        # a custom file's labels are read from it; when the file is not checked here (doctor
        # checks it with its own fix), a missing one leaves the labels unknown
        if verify_file or (model.path is not None and Path(model.path).is_file()):
            return list(resolve_model(model).labels)
    except ModelError as err:
        parsed.add(("model",), str(err))
    return None


def _creatable(path: Path) -> str | None:
    """Why the directory `path` cannot be created or written, or None."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{shown(probe)} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{shown(probe)} is not writable by this user" + (
            "" if probe == path else f" (needed to create {shown(path)})"
        )
    return None


def _section(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _text(value: Any, default: str | None = None) -> str | None:
    return value if isinstance(value, str) and value else default


def _environment(data: Any, parsed: Parsed, camera_files: bool) -> None:
    """Paths the agent will create or read. On the raw data, so they are checked even where
    the schema refused something else in the file."""
    outbox_path = _text(_section(data, "outbox").get("path"), OutboxConfig().path)
    assert outbox_path is not None
    outbox = Path(outbox_path).expanduser()
    if outbox.is_dir():
        parsed.add(("outbox", "path"), f"{shown(outbox)} is a directory; give a file name")
    else:
        why = _creatable(outbox.parent)
        if why:
            parsed.add(("outbox", "path"), f"cannot create the outbox: {why}")
    evidence_dir = _text(_section(data, "evidence").get("dir"), EvidenceConfig().dir)
    assert evidence_dir is not None
    evidence = Path(evidence_dir).expanduser()
    why = _creatable(evidence) if not evidence.is_file() else f"{shown(evidence)} is a file"
    if why:
        parsed.add(("evidence", "dir"), f"cannot create the evidence directory: {why}")
    # The MQTT password file and TLS files are not checked here: they belong to the service
    # user on the box (a config is often checked elsewhere first), `run` retries without them
    # with the reason in the log and stats, and doctor's broker check logs in with them.
    cameras = data.get("cameras") if isinstance(data, dict) else None
    if camera_files and isinstance(cameras, list):
        for ci, cam in enumerate(cameras):
            url = _text(cam.get("url")) if isinstance(cam, dict) else None
            path = file_url_path(url) if url else None
            if path is not None and not path.is_file():
                parsed.add(("cameras", ci, "url"), f"no such video file {shown(path)}")


def check_text(
    text: str,
    env: Mapping[str, str] | None = None,
    source: str = "config",
    *,
    need_mqtt: bool = False,
    camera_files: bool = True,
    verify_model: bool = True,
    environment: bool = True,
    known_labels: list[str] | None = None,
) -> Checked:
    """Every problem of one config text. `known_labels` skips the model step (a reload keeps its
    model); doctor checks the model and the paths itself (`verify_model`, `environment` False),
    each with its own fix."""
    try:
        parsed = parse_text(closed_models()[1], rule_models(), text, env, source)
    except ConfigError as err:  # YAML that cannot be read at all
        return Checked(None, err.problems)
    labels = known_labels if known_labels is not None else _model_problems(parsed.data, parsed, verify_model)
    check_refs(parsed.data, labels, parsed)
    data = parsed.data if isinstance(parsed.data, dict) else {}
    if need_mqtt and data.get("mqtt") is None and data.get("webhook") is None:
        parsed.add((), "mqtt: the daemon needs an mqtt section (url, credentials, tls) or a webhook section")
    if environment:
        _environment(parsed.data, parsed, camera_files)
    problems = parsed.sorted_problems()
    return Checked(parsed.cfg if not problems else None, problems)


def check_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None, **kw: Any) -> Checked:
    """`check_text` of a file; a file that cannot be read is one problem."""
    try:
        text = read_config_text(path)
    except ConfigError as err:
        return Checked(None, err.problems)
    return check_text(text, env, str(path), **kw)
