"""The typed query strings and bodies of the JSON API (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.console import queries
from edge_agent.console.web_state import WebContext, blank_to_none, parse_time

State = Literal["new", "acknowledged", "dispatched", "resolved", "false_alarm"]
Severity = Literal["info", "warning", "alert"]
_NAME = Field(None, max_length=200)


class _Query(BaseModel):
    # Unknown parameters are let through: `?token=` is the guard's, a cache-buster harms nobody.
    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _blank(cls, data: Any) -> Any:
        return blank_to_none(data)


class WhereQuery(_Query):
    site: str | None = Field(None, max_length=200, description="village (site id)")
    device: str | None = _NAME
    camera: str | None = _NAME
    rule: str | None = _NAME


class RangeQuery(_Query):
    from_: str | None = Field(
        None,
        alias="from",
        description="start bound (inclusive): RFC 3339 (2026-11-26T08:00:00Z), a local time or date"
        " (2026-11-26) in the console's time zone, or epoch seconds",
    )
    to: str | None = Field(None, description="end bound (exclusive), as `from`")

    def bounds(self, ctx: WebContext) -> tuple[float | None, float | None]:
        return parse_time("from", self.from_, ctx.zone_name), parse_time("to", self.to, ctx.zone_name)


class _IncidentWhere(WhereQuery, RangeQuery):
    severity: Severity | None = None
    state: State | Literal["open"] | None = Field(
        None, description="a workflow state, or `open` (new, acknowledged or dispatched)"
    )
    tab: Literal["alerts", "info", "all"] = Field(
        "alerts", description="alerts: severity warning or alert; info: severity info; all"
    )

    def filter(self, ctx: WebContext, limit: int = queries.MAX_LIMIT, **extra: Any) -> queries.IncidentFilter:
        start, end = self.bounds(ctx)
        return queries.IncidentFilter(
            site=self.site, device=self.device, camera=self.camera, rule=self.rule, severity=self.severity,
            state=self.state, tab=self.tab, from_epoch=start, to_epoch=end, limit=limit, **extra,
        )  # fmt: skip


class IncidentQuery(_IncidentWhere):
    limit: int = Field(200, ge=1, le=queries.MAX_LIMIT)


class StreamQuery(_IncidentWhere):
    since: str | None = Field(
        None, description="send incidents changed after this (the list's `as_of`); default: now"
    )


class ExportQuery(_IncidentWhere):
    tab: Literal["alerts", "info", "all"] = Field("all", description="as for the list; default all")


class CountsQuery(WhereQuery):
    pass


class SeriesQuery(WhereQuery, RangeQuery):
    bucket: Literal["hour", "day"] = "hour"
    tz: str | None = Field(
        None,
        max_length=64,
        description="IANA zone of the buckets; default: the console's, else the villages'",
    )


class CountExportQuery(RangeQuery):
    pass


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateBody(_Body):
    state: State
    assignee: str | None = Field(None, max_length=200, description="who is sent (needed for dispatched)")
    note: str | None = Field(None, max_length=2000)


class NoteBody(_Body):
    text: str = Field(min_length=1, max_length=2000)


class BulkBody(_Body):
    event_ids: list[str] = Field(min_length=1, max_length=500)
    state: State
    assignee: str | None = Field(None, max_length=200)
    note: str | None = Field(None, max_length=2000)


class VerdictBody(_Body):
    verdict: Literal["confirmed", "false_alarm"]
    note: str | None = Field(None, max_length=2000)


class CommandBody(BaseModel):
    """A command for one box (`POST /api/devices/{site}/{device}/commands`)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["ping", "config-get", "config-set", "snapshot", "model-update"]
    args: dict[str, str] = Field(
        default_factory=dict,
        description="ping, config-get: none; config-set: config (the YAML text; a password written *** keeps"
        " the box's own), base_sha256 (the config it was edited from); snapshot: camera; model-update: name",
    )
