"""The config file: pydantic models (unknown keys are errors) and the loader.

Rule kinds are not listed here: each kind's module under `pipeline/rules/` defines its
config model (a `RuleConfigBase`), and `app/config.py` closes `CameraConfig.rules` over the
registered kinds. Core stays free of any kind, so a new kind is one file plus one registry line.

Validators are pure: they never touch files, the network or the model. Checks
that need the model's label list (`check_config`) are a separate step so that
`edge-agent validate` can report every problem at once, each with its path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Severity = Literal["info", "warning", "alert"]
RelPoint = tuple[float, float]

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(Exception):
    """A config the user must fix; `problems` holds one `Problem` per mistake."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_points(points: Sequence[RelPoint], min_points: int, what: str) -> Sequence[RelPoint]:
    if len(points) < min_points:
        raise ValueError(f"a {what} needs at least {min_points} points, got {len(points)}")
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"point {i} [{x}, {y}] is outside the frame: coordinates are relative, from 0 to 1"
            )
    return points


class SiteConfig(_Model):
    id: str = Field(min_length=1, description="Site id, used in topics and events")
    name: str = Field("", description="Human name of the site")
    timezone: str = Field("UTC", description="IANA zone for rule schedules, e.g. Asia/Shanghai")


class DeviceConfig(_Model):
    id: str = Field(min_length=1, description="This box's id, used in topics and event ids")


class ModelConfig(_Model):
    name: str | None = Field("yolox-nano", description="A manifest in models/ (models/<name>.yaml)")
    path: str | None = Field(None, description="A custom ONNX file; its decoder is inferred")
    decoder: Literal["yolox", "yolov8", "yolov5"] | None = Field(None, description="Override the decoder")
    min_score: float = Field(0.35, ge=0.0, le=1.0)
    nms_iou: float = Field(0.45, ge=0.0, le=1.0)
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads per detection worker")
    workers: int | None = Field(
        None, ge=1, le=64, description="Detection worker threads; default: one per physical core"
    )
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])


class TlsConfig(_Model):
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = Field(False, description="Skip certificate checks; never on a real deployment")


class MqttConfig(_Model):
    url: str = Field(description="mqtt://host:port or mqtts://host:port")
    username: str | None = None
    password: str | None = Field(None, repr=False)
    password_file: str | None = None
    tls: TlsConfig | None = None
    topic_prefix: str = "eagleeye"
    client_id: str | None = None
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive_s: int = Field(30, ge=5, le=3600)
    stats_interval_s: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        if not re.match(r"^mqtts?://[^/]+", v):
            raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {redact(v)!r}")
        return v


class OutboxConfig(_Model):
    path: str = "/var/lib/edge-agent/outbox.sqlite3"
    max_mb: float = Field(256, gt=0)


class EvidenceConfig(_Model):
    dir: str = "/var/lib/edge-agent/evidence"
    jpeg_quality: int = Field(85, ge=30, le=100)


class DetectConfig(_Model):
    fps: float = Field(5.0, gt=0, le=60, description="Frames per second given to the detector")
    motion_gate: bool = Field(True, description="Skip the detector on frames where nothing moved")


class ZoneConfig(_Model):
    polygon: list[RelPoint]

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[RelPoint]) -> list[RelPoint]:
        return list(_check_points(v, 3, "polygon"))


class LineConfig(_Model):
    points: list[RelPoint]

    @field_validator("points")
    @classmethod
    def _points(cls, v: list[RelPoint]) -> list[RelPoint]:
        if len(v) != 2:
            raise ValueError(f"a line has exactly 2 points, got {len(v)}")
        return list(_check_points(v, 2, "line"))


class Window(_Model):
    start: str = Field(alias="from", description="HH:MM local time")
    end: str = Field(alias="to", description="HH:MM local time; before `from` means overnight")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _TIME_RE.match(v):
            raise ValueError(f"expected a time as HH:MM (00:00 to 23:59), got {v!r}")
        return v


class RuleConfigBase(_Model):
    """What every rule kind's config has; each kind's module (pipeline/rules/) subclasses it."""

    id: str = Field(min_length=1)
    labels: list[str] | None = None
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    schedule: Window | list[Window] | None = None
    cooldown_s: float = Field(0.0, ge=0)
    severity: Severity = "warning"
    kind: str  # last, as each kind's `Literal` keeps this place: `validate` lists keys in this order

    def windows(self) -> list[Window]:
        if self.schedule is None:
            return []
        return self.schedule if isinstance(self.schedule, list) else [self.schedule]


class CameraConfig(_Model):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(repr=False, description="rtsp://, file:// or a local video path")
    detect: DetectConfig = Field(default_factory=DetectConfig)
    masks: list[list[RelPoint]] = Field(default_factory=list)
    zones: dict[str, ZoneConfig] = Field(default_factory=dict)
    lines: dict[str, LineConfig] = Field(default_factory=dict)
    # Open here: app/config.py closes it with the union of the registered rule kinds.
    rules: Sequence[RuleConfigBase] = Field(default_factory=list)
    stall_s: float = Field(10.0, gt=0, description="No new frame for this long: stalled, reopen")
    offline_after_s: float = Field(30.0, gt=0, description="Unreachable for this long: offline")
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)

    @field_validator("masks")
    @classmethod
    def _masks(cls, v: list[list[RelPoint]]) -> list[list[RelPoint]]:
        for m in v:
            _check_points(m, 3, "mask")
        return v


class Config(_Model):
    version: Literal[1]
    site: SiteConfig
    device: DeviceConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    mqtt: MqttConfig | None = None
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    cameras: Sequence[CameraConfig] = Field(min_length=1)

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        known = ", ".join(c.id for c in self.cameras)
        raise ConfigError([Problem("cameras", f"no camera with id {camera_id!r} (cameras: {known})")])


# --- secrets -----------------------------------------------------------------

_CRED_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:]*)(?::[^/@\s]*)?@")


def redact(text: str) -> str:
    """Hide passwords in URLs: rtsp://admin:secret@host -> rtsp://admin:***@host."""
    return _CRED_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", text)


# --- loading -----------------------------------------------------------------


def format_loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _expand_env(data: Any, path: tuple[Any, ...], env: Mapping[str, str], problems: list[Problem]) -> Any:
    if isinstance(data, dict):
        return {k: _expand_env(v, (*path, k), env, problems) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand_env(v, (*path, i), env, problems) for i, v in enumerate(data)]
    if isinstance(data, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.append(Problem(format_loc(path), f"environment variable {name} is not set"))
                return ""
            return env[name]

        return _VAR_RE.sub(sub, data)
    return data


def _allowed_keys(
    loc: list[Any], root: type[BaseModel], rule_models: Mapping[str, type[BaseModel]]
) -> list[str]:
    """The keys the model at `loc` (a pydantic error path) accepts, by their YAML names."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if part in rule_models:
            model = rule_models[part]
            continue
        field = (
            model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        )
        if field is None:
            continue  # a key of a mapping, such as a zone's name
        model = _inner_model(field.annotation)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside `X | None`, `list[X]` or `dict[str, X]`, else the annotation."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _pydantic_problems(
    err: ValidationError, root: type[BaseModel], rule_models: Mapping[str, type[BaseModel]]
) -> list[Problem]:
    kinds = tuple(rule_models)
    problems = []
    for e in err.errors(include_url=False):
        loc = list(e["loc"])
        # A discriminated union puts the tag (the rule kind) into the path; users never wrote it.
        loc = [p for i, p in enumerate(loc) if not (i > 0 and isinstance(loc[i - 1], int) and p in kinds)]
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(list(e["loc"])[:-1], root, rule_models)
            msg = f"unknown key {loc[-1]!r}" + (
                f" (expected one of: {', '.join(allowed)})" if allowed else ""
            )
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "union_tag_invalid":
            msg = f"unknown rule kind {e['input'].get('kind')!r}; expected one of: {', '.join(kinds)}"
        elif e["type"] == "union_tag_not_found":
            msg = f"a rule needs a 'kind', one of: {', '.join(kinds)}"
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            if "input" in e and not isinstance(e["input"], (dict, list)):
                shown = redact(str(e["input"]))
                if shown not in msg:
                    msg += f" (got {shown!r})"
        problems.append(Problem(format_loc(loc), msg))
    return problems


ConfigT = TypeVar("ConfigT", bound=Config)


def parse_config_with(
    model: type[ConfigT],
    rule_models: Mapping[str, type[RuleConfigBase]],
    text: str,
    env: Mapping[str, str] | None = None,
    source: str = "config",
) -> ConfigT:
    """Parse YAML text into `model`; raises ConfigError with every problem.

    `model` is the config closed over the rule kinds (`rule_models`, kind -> config model);
    `edge_agent.app.config.parse_config` passes the registered ones.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError([Problem(source, f"malformed YAML at {where}: {problem}")]) from err
    if not isinstance(data, dict):
        raise ConfigError([Problem(source, "expected a mapping with version, site, device, cameras")])
    problems: list[Problem] = []
    data = _expand_env(data, (), os.environ if env is None else env, problems)
    try:
        cfg = model.model_validate(data)
    except ValidationError as err:
        problems.extend(_pydantic_problems(err, model, rule_models))
        raise ConfigError(problems) from err
    if problems:
        raise ConfigError(problems)
    return cfg


def read_config_text(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([Problem(str(p), f"cannot read the config file: {err.strerror}")]) from err


def check_config(cfg: Config, known_labels: Sequence[str] | None) -> list[Problem]:
    """Cross-reference checks: rules name existing zones/lines and labels the model knows."""
    problems: list[Problem] = []
    seen_cams: set[str] = set()
    known = set(known_labels) if known_labels is not None else None
    for ci, cam in enumerate(cfg.cameras):
        if cam.id in seen_cams:
            problems.append(Problem(f"cameras[{ci}].id", f"camera id {cam.id!r} is used twice"))
        seen_cams.add(cam.id)
        zone_names = ", ".join(cam.zones) or "none defined"
        line_names = ", ".join(cam.lines) or "none defined"
        seen_rules: set[str] = set()
        for ri, rule in enumerate(cam.rules):
            base = f"cameras[{ci}].rules[{ri}]"
            if rule.id in seen_rules:
                problems.append(Problem(f"{base}.id", f"rule id {rule.id!r} is used twice in this camera"))
            seen_rules.add(rule.id)
            zone = getattr(rule, "zone", None)
            if zone is not None and zone not in cam.zones:
                problems.append(Problem(f"{base}.zone", f"no zone named {zone!r} (zones: {zone_names})"))
            line = getattr(rule, "line", None)
            if line is not None and line not in cam.lines:
                problems.append(Problem(f"{base}.line", f"no line named {line!r} (lines: {line_names})"))
            if known is None:
                continue
            for key in ("labels", "items", "owner_labels"):
                for li, label in enumerate(getattr(rule, key, None) or []):
                    if label not in known:
                        hint = _closest(label, known)
                        problems.append(
                            Problem(
                                f"{base}.{key}[{li}]",
                                f"the model does not know the label {label!r}"
                                + (f" (did you mean {hint!r}?)" if hint else ""),
                            )
                        )
    return problems


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return match[0] if match else None
