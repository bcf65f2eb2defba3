"""The JSON API's reads: incidents, health, facets, counts, the map, settings and the console's status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from edge_agent.console import evidence, queries, workflow
from edge_agent.console.auth import Principal
from edge_agent.console.config import check_timezone
from edge_agent.console.web_models import CountsQuery, IncidentQuery, SeriesQuery
from edge_agent.console.web_state import ApiError, Json, WebContext, context, iso, now, principal

router = APIRouter(prefix="/api", tags=["read"])
Ctx = Annotated[WebContext, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
_RANK = {"offline": 0, "stalled": 1, "unknown": 2, "online": 3}  # a village shows its worst box


@router.get("/me", summary="who the console takes you for")
async def me(who: Who) -> Json:
    return Json({"name": who.name, "via": who.via})


@router.get("/settings", summary="what the pages need to know about this console")
async def settings(ctx: Ctx, who: Who) -> Json:
    return Json(
        {
            "timezone": ctx.cfg.timezone,
            "tile_url": ctx.cfg.map.tile_url,
            "tile_attribution": ctx.cfg.map.attribution,
            "read_only": ctx.read_only,
            "user": who.name,
            "states": list(workflow.STATES),
            "open_states": list(workflow.OPEN_STATES),
        }
    )


@router.get("/incidents", summary="incidents, open alerts first, then open warnings, newest start first")
def list_incidents(ctx: Ctx, q: Annotated[IncidentQuery, Query()]) -> Json:
    flt = q.filter(ctx, q.limit)
    as_of = now()
    with ctx.db.connection() as conn:
        rows = queries.incidents(conn, flt)
    return Json({"incidents": rows, "as_of": iso(as_of)})


@router.get("/incidents/{event_id}", summary="one incident with its timeline and audit trail")
def get_incident(ctx: Ctx, event_id: str) -> Json:
    with ctx.db.connection() as conn:
        row = queries.incident(conn, event_id)
    if row is None:
        raise ApiError(404, f"no incident {event_id!r}")
    return Json(row)


@router.get(
    "/incidents/{event_id}/snapshot.jpg",
    summary="the incident's snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def get_snapshot(ctx: Ctx, event_id: str) -> Response:
    with ctx.db.connection() as conn:
        jpeg = queries.snapshot_jpeg(conn, event_id)
    if jpeg is None:
        raise ApiError(404, f"no snapshot for {event_id!r}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/incidents/{event_id}/owner.jpg",
    summary="the crop of a left object's owner",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def get_owner_crop(ctx: Ctx, event_id: str) -> Response:
    with ctx.db.connection() as conn:
        jpeg = evidence.owner_jpeg(conn, event_id)
    if jpeg is None:
        raise ApiError(404, f"no owner crop for {event_id!r}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/incidents/{event_id}/clip.mp4",
    summary="the incident's clip (H.264 MP4) once complete; `Range: bytes=...` answers 206",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}}}, 206: {"content": {"video/mp4": {}}}},
)
def get_clip(ctx: Ctx, event_id: str, request: Request) -> Response:
    with ctx.db.connection() as conn:
        mp4 = evidence.clip_mp4(conn, event_id)
    if mp4 is None:
        raise ApiError(404, f"no complete clip for {event_id!r}")
    size = len(mp4)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    try:
        span = evidence.byte_range(request.headers.get("range"), size)
    except ValueError:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if span is None:
        return Response(mp4, media_type="video/mp4", headers=headers)
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return Response(mp4[first : last + 1], status_code=206, media_type="video/mp4", headers=headers)


@router.get("/health", summary="every box and camera: online, offline, stalled or unknown, and since when")
def health(ctx: Ctx) -> Json:
    with ctx.db.connection() as conn:
        out: dict[str, Any] = queries.health(conn, ctx.cfg.stalled_after_s)
    return Json(out)


@router.get("/facets", summary="the values each filter can take")
def facets(ctx: Ctx) -> Json:
    with ctx.db.connection() as conn:
        out: dict[str, Any] = queries.facets(conn)
    return Json(out)


@router.get("/counts", summary="count aggregates as received")
def counts(ctx: Ctx, q: Annotated[CountsQuery, Query()]) -> Json:
    with ctx.db.connection() as conn:
        rows = queries.counts(conn, q.site, q.device, q.camera, q.rule)
    return Json({"counts": rows})


@router.get("/counts/series", summary="counts summed per hour or per day in a time zone")
def count_series(ctx: Ctx, q: Annotated[SeriesQuery, Query()]) -> Json:
    start, end = q.bounds(ctx)
    with ctx.db.connection() as conn:
        zone = _series_zone(ctx, conn, q)
        series = queries.count_series(
            conn, bucket=q.bucket, tz=zone, site=q.site, device=q.device, camera=q.camera, rule=q.rule,
            from_epoch=start, to_epoch=end,
        )  # fmt: skip
    return Json({"bucket": q.bucket, "timezone": zone, "series": series})


def _series_zone(ctx: WebContext, conn: Any, q: SeriesQuery) -> str:
    """The zone asked for; else the console's; else the one zone the chosen boxes announce; else UTC."""
    if q.tz is not None:
        try:
            return check_timezone(q.tz)
        except ValueError as err:
            raise ApiError(400, f"tz: {err}") from err
    if ctx.cfg.timezone:
        return ctx.cfg.timezone
    devices = queries.health(conn, ctx.cfg.stalled_after_s)["devices"]
    zones = {
        d.get("timezone")
        for d in devices
        if (q.site is None or d["site"] == q.site) and (q.device is None or d["device"] == q.device)
    }
    zones.discard(None)
    return zones.pop() if len(zones) == 1 else "UTC"


@router.get("/map", summary="villages, boxes and cameras with their places and states, for the map")
def map_data(ctx: Ctx) -> Json:
    with ctx.db.connection() as conn:
        devices = queries.health(conn, ctx.cfg.stalled_after_s)["devices"]
    sites: dict[str, dict[str, Any]] = {}
    for d in devices:
        site = sites.setdefault(
            d["site"],
            {"site": d["site"], "site_name": None, "location": None, "state": "online", "devices": []},
        )
        site["site_name"] = site["site_name"] or d.get("site_name")
        site["location"] = site["location"] or d.get("location")
        if _RANK.get(d["state"], 2) < _RANK.get(site["state"], 2):
            site["state"] = d["state"]
        cameras = [
            {"camera": c["camera"], "location": c.get("location"), "state": c["state"]} for c in d["cameras"]
        ]
        site["devices"].append(
            {"device": d["device"], "location": d.get("location"), "state": d["state"], "cameras": cameras}
        )
    return Json(
        {
            "tile_url": ctx.cfg.map.tile_url,
            "tile_attribution": ctx.cfg.map.attribution,
            "sites": sorted(sites.values(), key=lambda s: s["site"]),
        }
    )


@router.get("/status", summary="the console: database, MQTT connection, ingest counters, refused and purged")
def status(ctx: Ctx) -> Json:
    with ctx.db.connection() as conn:
        totals = queries.totals(conn)
        counters = queries.status_counters(conn)
    return Json(
        {
            "database": {"engine": ctx.db.dialect_name, "url": ctx.db.shown, "rows": totals},
            "mqtt": ctx.ingest.status() if ctx.ingest is not None else None,
            "read_only": ctx.read_only,
            **counters,
        }
    )
