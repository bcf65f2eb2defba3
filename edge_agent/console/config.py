"""The console's config file (YAML, `version: 1`): pydantic models, unknown keys are errors.

Problems come back as `ConfigError` with one `Problem` per mistake and its path
(`web.auth.users[0].password_file: ...`), the same shape as the agent's config.
`${VAR}` is read from the environment. Validators do no I/O: password files are
read when the console starts, not while the file is checked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.console.fleet import FleetConfig
from edge_agent.core.config import ConfigError, Problem, redact
from edge_agent.core.config_load import parse_config_with

_NAME_RE = re.compile(r"^[^/+#\s]+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    ca: str | None = Field(None, description="CA certificate to check the broker with")
    cert: str | None = Field(None, description="client certificate, if the broker wants one")
    key: str | None = Field(None, description="the client certificate's key")
    insecure: bool = Field(False, description="skip certificate checks; for a test broker only")


class MqttConfig(_Model):
    url: str = Field(description="mqtt://host[:port] or mqtts://host[:port]")
    username: str | None = None
    password: str | None = Field(None, repr=False)
    password_file: str | None = None
    tls: TlsConfig | None = None
    topic_prefix: str = Field("eagleeye", description="the boxes' mqtt.topic_prefix")
    client_id: str = Field(
        "eagleeye-console",
        description="fixed client id of the persistent session; each instance of a group needs its own",
    )
    group: str | None = Field(
        None, description="MQTT 5 shared subscription group: instances with the same group split the load"
    )
    protocol: Literal["3.1.1", "5"] = "5"
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=60, description="MQTT 5: how long the broker keeps the session while away"
    )
    keepalive_s: int = Field(30, ge=5, le=3600)
    receive_maximum: int = Field(1000, ge=1, le=65535, description="MQTT 5: messages in flight to us")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^mqtts?://[^/]+", v):
            raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {redact(v)!r}")
        return v

    @field_validator("topic_prefix", "group")
    @classmethod
    def _topic_name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME_RE.match(v):
            raise ValueError(f"must be one topic level without / + # or spaces, got {v!r}")
        return v

    @model_validator(mode="after")
    def _group_needs_v5(self) -> MqttConfig:
        if self.group is not None and self.protocol != "5":
            raise ValueError("group (shared subscriptions) needs protocol: '5'")
        if self.tls is not None and not self.url.startswith("mqtts://"):
            raise ValueError("tls is set but the url is plain mqtt://; use mqtts:// for TLS")
        return self


class DatabaseConfig(_Model):
    url: str = Field(
        "sqlite:///var/lib/edge-agent-console/console.sqlite3",
        description="sqlite:///ABSOLUTE/PATH, sqlite:RELATIVE/PATH or postgresql://user@host:port/db",
        repr=False,
    )
    password_file: str | None = Field(None, description="PostgreSQL password, kept out of the URL")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^(sqlite:|postgres(ql)?://)", v):
            raise ValueError(
                f"expected sqlite:///path/console.sqlite3 or postgresql://user@host/db, got {redact(v)!r}"
            )
        return v

    @property
    def engine(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.url.startswith("sqlite:") else "postgresql"

    @property
    def sqlite_path(self) -> Path:
        """`sqlite:///abs/path` -> /abs/path, `sqlite:rel/path` -> rel/path."""
        rest = self.url.removeprefix("sqlite:")
        return Path(rest[2:] if rest.startswith("//") else rest)


class UserConfig(_Model):
    name: str = Field(min_length=1, description="shown as who confirmed or dismissed an alert")
    password: str | None = Field(None, repr=False)
    password_file: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> UserConfig:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("give exactly one of password and password_file")
        return self


class TokenConfig(_Model):
    name: str = Field(min_length=1, description="shown as who acted with this token")
    token: str | None = Field(None, repr=False, min_length=16)
    token_file: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> TokenConfig:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("give exactly one of token and token_file")
        return self


class AuthConfig(_Model):
    users: list[UserConfig] = Field(default_factory=list, description="HTTP basic auth")
    tokens: list[TokenConfig] = Field(default_factory=list, description="bearer tokens (?token= once)")
    trust_loopback: bool = Field(
        True, description="requests from this machine (127.0.0.0/8, ::1) need no login"
    )


class WebConfig(_Model):
    bind: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8088, ge=0, le=65535, description="0 picks a free port")
    auth: AuthConfig = Field(default_factory=AuthConfig)
    public_url: str | None = Field(
        None, description="the URL people open, when behind a proxy; checked against Origin"
    )


def check_timezone(v: str) -> str:
    """An IANA zone name the system knows (`Asia/Shanghai`); ValueError otherwise."""
    if not re.match(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", v):
        raise ValueError(f"expected an IANA time zone such as Asia/Shanghai, got {v!r}")
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"expected an IANA time zone such as Asia/Shanghai, got {v!r}") from err
    return v


class MapConfig(_Model):
    tile_url: str | None = Field(
        None,
        description="a slippy-map tile URL with {z}, {x} and {y}, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png;"
        " none: the map page draws a plain plan of the coordinates",
    )
    attribution: str = Field("", max_length=500, description="shown on the map, as the tile server asks")

    @field_validator("tile_url")
    @classmethod
    def _tiles(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.match(r"^https?://[^/\s]+/\S*$", v) or not all(p in v for p in ("{z}", "{x}", "{y}")):
            raise ValueError(f"expected http(s)://host/...{{z}}/{{x}}/{{y}}..., got {redact(v)!r}")
        return v


class RetentionDays(_Model):
    """Days each kind of row is kept (by when it was received or started); null keeps it for ever."""

    events: float | None = Field(365, gt=0, description="incidents with their phases, audit trail, snapshot")
    snapshots: float | None = Field(90, gt=0, description="the JPEG only; the incident stays")
    clips: float | None = Field(30, gt=0, description="the clip's MP4 and chunks; the incident stays")
    stats: float | None = Field(30, gt=0)
    status: float | None = Field(90, gt=0, description="device and camera status history")
    counts: float | None = Field(730, gt=0)
    rejected: float | None = Field(30, gt=0)
    refused: float | None = Field(365, gt=0, description="the counters of messages over their size limit")


class RetentionConfig(_Model):
    days: RetentionDays = Field(default_factory=RetentionDays)
    interval_s: float = Field(3600, ge=60, description="how often old rows are purged")


class LimitsConfig(_Model):
    """The largest message of each kind that is stored; a bigger one is acknowledged and counted."""

    event_bytes: int = Field(262_144, ge=1024)
    snapshot_bytes: int = Field(2_097_152, ge=1024)
    clip_chunk_bytes: int = Field(300_000, ge=1024)
    count_bytes: int = Field(65_536, ge=1024)
    status_bytes: int = Field(65_536, ge=1024)
    stats_bytes: int = Field(262_144, ge=1024)
    rejected_keep_bytes: int = Field(4096, ge=0, description="how much of a rejected payload is kept")


class ConsoleConfig(_Model):
    version: Literal[1]
    mqtt: MqttConfig
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    stalled_after_s: float = Field(
        120.0, gt=0, description="a device online but silent this long shows as stalled on the board"
    )
    timezone: str | None = Field(
        None, description="IANA zone for every time shown; none: each village's announced zone, else UTC"
    )
    map: MapConfig = Field(default_factory=MapConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    fleet: FleetConfig | None = Field(None, description="remote operations: the key that signs commands")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return None if v is None else check_timezone(v)

    @model_validator(mode="after")
    def _login_off_loopback(self) -> ConsoleConfig:
        auth = self.web.auth
        if not (auth.users or auth.tokens) and not auth.trust_loopback:
            raise ValueError("web.auth: trust_loopback is false and no users or tokens: nobody could log in")
        return self


def parse_console_config(
    text: str, env: Mapping[str, str] | None = None, source: str = "console config"
) -> ConsoleConfig:
    """The agent's loader: bounded YAML, no duplicate keys, `${VAR}`s, every problem with its path."""
    return parse_config_with(ConsoleConfig, {}, text, env, source)


def load_console_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> ConsoleConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([Problem(str(p), f"cannot read the config file: {err.strerror}")]) from err
    return parse_console_config(text, env, source=str(p))


def read_secret(path: str, what: str) -> str:
    """A password or token from its file (trailing newline dropped); ConfigError naming `what`."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as err:
        raise ConfigError([Problem(what, f"cannot read {path}: {err.strerror}")]) from err
