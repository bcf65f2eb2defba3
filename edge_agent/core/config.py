"""The config file: pydantic models (unknown keys are errors) and the loader.

Rule kinds are not listed here: each kind's module under `pipeline/rules/` defines its
config model (a `RuleConfigBase`), and `app/config.py` closes `CameraConfig.rules` over the
registered kinds. Core stays free of any kind, so a new kind is one file plus one registry line.

Validators are pure: they never touch files, the network or the model. Reading a file
(`core/config_load.py`) and the checks that need the model or the disk
(`app/checks.py`) are separate steps, all run by `edge-agent validate` in one pass.
Ids follow `core/ids.py`, URLs `core/urls.py`; no number may be infinite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from edge_agent.core.ids import id_problem, topic_level_problem
from edge_agent.core.urls import BROKER_SCHEMES, UrlError, camera_url_problem, parse_net_url, redact

Severity = Literal["info", "warning", "alert"]
RelPoint = tuple[float, float]

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
    line: int = 0  # where in the file (1-based), for listing problems in file order; 0 unknown

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class _Model(BaseModel):
    # No inf/nan anywhere: `.inf` is valid YAML but no timeout, size or rate can be infinite.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def _legal_id(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Site, device, camera and rule ids, zone and line names: MQTT topic levels (core/ids.py).
Id = Annotated[str, AfterValidator(_legal_id)]


def _check_names(names: Iterable[str], what: str) -> None:
    for name in names:
        problem = id_problem(name)
        if problem is not None:
            raise ValueError(f"{what} name {str(name)[:80]!r}: {problem}")


def _timezone(value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
        return value
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):
        pass
    offset = re.fullmatch(r"(?:UTC|GMT)\s*([+-])\s*(\d{1,2})(?::00)?", value.strip(), re.IGNORECASE)
    if offset:
        flipped = "-" if offset.group(1) == "+" else "+"
        hint = f" (for {value.strip()} write Etc/GMT{flipped}{int(offset.group(2))}: the sign flips there)"
    else:
        near = closest(value, zoneinfo.available_timezones()) if 0 < len(value) <= 64 else None
        hint = f" (did you mean {near!r}?)" if near else ""
    raise ValueError("unknown time zone: expected an IANA name such as Asia/Shanghai or UTC" + hint)


def _check_points(points: Sequence[RelPoint], min_points: int, what: str) -> Sequence[RelPoint]:
    if len(points) < min_points:
        raise ValueError(f"a {what} needs at least {min_points} points, got {len(points)}")
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"point {i} [{x}, {y}] is outside the frame: coordinates are relative, from 0 to 1"
            )
    return points


class Location(_Model):
    """Where a village or a camera is, for the town console's map (WGS 84 degrees)."""

    lat: float = Field(ge=-90.0, le=90.0, description="latitude, degrees north")
    lon: float = Field(ge=-180.0, le=180.0, description="longitude, degrees east")


class SiteConfig(_Model):
    id: Id = Field(description="Site id, used in topics and events")
    name: str = Field("", max_length=200, description="Human name of the site")
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        "UTC", description="IANA zone for rule schedules and the console's times, e.g. Asia/Shanghai"
    )
    location: Location | None = Field(None, description="The village on the console's map")


class DeviceConfig(_Model):
    id: Id = Field(description="This box's id, used in topics and event ids")


class ModelConfig(_Model):
    name: str | None = Field("yolox-nano", description="A manifest in models/ (models/<name>.yaml)")
    path: str | None = Field(None, description="A custom ONNX file; its decoder is inferred")
    decoder: Literal["yolox", "yolov8", "yolov5"] | None = Field(None, description="Override the decoder")
    min_score: float = Field(0.35, ge=0.0, le=1.0)
    nms_iou: float = Field(0.45, ge=0.0, le=1.0)
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads per detection worker")
    workers: int | None = Field(
        None, ge=1, le=64, description="Detection worker threads; default: two per physical core"
    )
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="For model.path: the file's sha256, checked at every load as a manifest's is",
    )


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
    topic_prefix: str = Field("eagleeye", max_length=200)
    client_id: str | None = Field(None, min_length=1, max_length=128)
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive_s: int = Field(30, ge=5, le=3600)
    stats_interval_s: float = Field(30.0, gt=0, le=86400)
    receipts: Literal["auto", "required", "off"] = Field(
        "auto",
        description=(
            "Keep events until the platform's receipt says they are stored: required; off: until the"
            " broker's PUBACK; auto: required once a platform announcing receipts has been seen"
        ),
    )
    receipt_timeout_s: float = Field(
        30.0,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="Events with no receipt this long after their PUBACK are sent again (then with backoff)",
    )

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        try:
            url = parse_net_url(v, BROKER_SCHEMES)
        except UrlError as err:
            raise ValueError(f"{err} (mqtt://host[:port] or mqtts://host[:port])") from None
        if url.rest.strip("/"):
            raise ValueError("a broker URL has no path: mqtt://host[:port] or mqtts://host[:port]")
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        for level in v.split("/"):
            problem = topic_level_problem(level)
            if problem is not None:
                raise ValueError(f"not a usable topic prefix: {problem}")
        return v


class OutboxConfig(_Model):
    path: str = Field("/var/lib/edge-agent/outbox.sqlite3", min_length=1)
    max_mb: float = Field(256, gt=0, le=1_000_000, description="Size cap of the outbox file, in MB")


class ClipConfig(_Model):
    pre_s: float = Field(10.0, ge=0, le=600, description="Seconds of video before the incident began")
    post_s: float = Field(10.0, ge=0, le=600, description="Seconds of video after the alert")
    max_s: float = Field(120.0, gt=0, le=1800, description="Longest clip; a longer one keeps both ends")
    record: bool = Field(
        True,
        description="Live: keep a ring of each camera's encoded stream to cut clips from (false: no clips)",
    )
    ring_mb: float = Field(
        64, gt=1, le=4096, allow_inf_nan=False, description="Disk the ring of one camera may take, in MB"
    )


class RuleClipConfig(_Model):
    """A rule's own clip settings; what it leaves out comes from `evidence.clip`."""

    enabled: bool = Field(True, description="false: this rule's incidents get no clip")
    pre_s: float | None = Field(None, ge=0, le=600)
    post_s: float | None = Field(None, ge=0, le=600)
    max_s: float | None = Field(None, gt=0, le=1800)


class EvidenceConfig(_Model):
    dir: str = Field("/var/lib/edge-agent/evidence", min_length=1)
    clip: ClipConfig = Field(default_factory=ClipConfig, description="Video around each alert")
    jpeg_quality: int = Field(85, ge=30, le=100)
    max_mb: float = Field(1024, gt=0, allow_inf_nan=False, description="Quota; oldest pictures go first")
    keep_mb: float = Field(
        512, gt=0, allow_inf_nan=False, description="Clips kept on the box; the oldest go first (counted)"
    )
    reserve_mb: float = Field(
        64, ge=0, allow_inf_nan=False, description="Disk space no picture may take: room for the outbox"
    )


class CommandsConfig(_Model):
    """Remote operations (PRODUCT.md): signed commands from the platform over MQTT."""

    public_key_file: str | None = Field(
        None, description="The platform's Ed25519 public key (PEM); without it no command is taken"
    )
    confirm_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="After config-set: how long cameras must stay online and rules run before it is kept",
    )


class DetectConfig(_Model):
    fps: float = Field(5.0, gt=0, le=60, description="Frames per second given to the detector")
    motion_gate: bool = Field(True, description="Skip the detector on frames where nothing moved")
    motion_refresh_s: float = Field(
        5.0,
        gt=0,
        le=60,
        allow_inf_nan=False,
        description="With the motion gate on, the detector still runs at least this often (seconds)",
    )


MAX_POINTS = 100  # a zone drawn on a camera image needs a dozen; thousands are a mistake


class ZoneConfig(_Model):
    polygon: list[RelPoint] = Field(max_length=MAX_POINTS)

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
            raise ValueError(f"expected a time as HH:MM (00:00 to 23:59), got {v[:80]!r}")
        return v


class RuleConfigBase(_Model):
    """What every rule kind's config has; each kind's module (pipeline/rules/) subclasses it."""

    id: Id
    labels: list[str] | None = None
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    # One window or a list of them; one is made a list before validation, so errors name
    # `schedule[0].from`, never a member of a type union.
    schedule: list[Window] | None = None
    cooldown_s: float = Field(0.0, ge=0, le=7 * 86400)
    severity: Severity = "warning"
    clip: RuleClipConfig | None = Field(
        None, description="This rule's clip settings (default: evidence.clip)"
    )
    kind: str  # last, as each kind's `Literal` keeps this place: `validate` lists keys in this order

    @field_validator("schedule", mode="before")
    @classmethod
    def _one_window(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    def windows(self) -> list[Window]:
        return list(self.schedule or [])


class CameraConfig(_Model):
    id: Id
    url: str = Field(repr=False, description="rtsp://, file:// or a local video path")
    record_url: str | None = Field(
        None, repr=False, description="The stream clips are cut from (the main stream); default: url"
    )
    location: Location | None = Field(None, description="The camera on the console's map")
    detect: DetectConfig = Field(default_factory=DetectConfig)
    masks: list[list[RelPoint]] = Field(default_factory=list, max_length=MAX_POINTS)
    zones: dict[str, ZoneConfig] = Field(default_factory=dict)
    lines: dict[str, LineConfig] = Field(default_factory=dict)
    # Open here: app/config.py closes it with the union of the registered rule kinds.
    rules: Sequence[RuleConfigBase] = Field(default_factory=list)
    stall_s: float = Field(10.0, gt=0, le=3600, description="No new frame for this long: stalled, reopen")
    offline_after_s: float = Field(30.0, gt=0, le=86400, description="Unreachable for this long: offline")
    open_timeout_s: float = Field(10.0, ge=0.1, le=600)
    read_timeout_s: float = Field(30.0, ge=0.1, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        problem = camera_url_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("masks")
    @classmethod
    def _masks(cls, v: list[list[RelPoint]]) -> list[list[RelPoint]]:
        for m in v:
            if len(m) > MAX_POINTS:
                raise ValueError(f"a mask has at most {MAX_POINTS} points, got {len(m)}")
            _check_points(m, 3, "mask")
        return v

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, v: dict[str, ZoneConfig]) -> dict[str, ZoneConfig]:
        _check_names(v, "zone")
        return v

    @field_validator("lines")
    @classmethod
    def _line_names(cls, v: dict[str, LineConfig]) -> dict[str, LineConfig]:
        _check_names(v, "line")
        return v


class HomeAssistantConfig(_Model):
    """Home Assistant MQTT discovery (opt-in); see mqtt/README.md "Home Assistant"."""

    discovery: bool = Field(False, description="Announce each camera as a Home Assistant device")
    prefix: str = Field(
        "homeassistant",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Home Assistant's discovery prefix (its MQTT integration's setting)",
    )


class WebhookConfig(_Model):
    """The webhook sink: each event POSTed, signed, to a platform without MQTT (mqtt/README.md)."""

    url: str = Field(description="https://platform.example/eagleeye (http:// only on a trusted network)")
    secret_file: str = Field(min_length=1, description="File holding the HMAC-SHA256 signing secret")
    timeout_s: float = Field(
        10.0, gt=0, le=300, allow_inf_nan=False, description="Seconds to wait for an answer"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected http://host/path or https://host/path")
        return v


class Config(_Model):
    version: Literal[1]
    site: SiteConfig
    device: DeviceConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    mqtt: MqttConfig | None = None
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)
    webhook: WebhookConfig | None = None
    commands: CommandsConfig = Field(default_factory=CommandsConfig)
    cameras: Sequence[CameraConfig] = Field(min_length=1)

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        known = ", ".join(c.id for c in self.cameras)
        raise ConfigError([Problem("cameras", f"no camera with id {camera_id!r} (cameras: {known})")])


__all__ = ["redact"]  # re-exported: every layer hides passwords through core.config.redact


# --- helpers -----------------------------------------------------------------


def format_loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def closest(word: str, candidates: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return match[0] if match else None
