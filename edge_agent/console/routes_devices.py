"""A box's page in the API: its status, stats, inventory, config and commands; sending a command.

A command is stored and answered at once (202, state `sent`); the box's answer comes on a
worker thread and the page asks for the command again until its state changes. Without
`fleet:` in the config the reads work and a command is refused (503) with the reason.
The guard has already checked the caller, the origin, the body's length and type; a
read-only console never gets to the POST.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from edge_agent.console import devices
from edge_agent.console.auth import Principal
from edge_agent.console.web_models import CommandBody
from edge_agent.console.web_state import ApiError, Json, WebContext, context, principal

router = APIRouter(prefix="/api/devices", tags=["devices"])
Ctx = Annotated[WebContext, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
NO_FLEET = "remote operations are off: set fleet.private_key_file in the console's config"
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "read-only console, or a request from another site"},
    404: {"description": "no such device (never heard from) or command"},
    411: {"description": "no Content-Length"},
    413: {"description": "body over 64 kB"},
    415: {"description": "not application/json"},
    422: {"description": "bad input"},
    503: {"description": "remote operations are off (no fleet key), or the database is unavailable"},
}


def _why_read_only(ctx: WebContext) -> str | None:
    if ctx.read_only:
        return "read-only console (--no-mqtt): no command can be sent"
    if ctx.fleet is None:
        return NO_FLEET
    return None


@router.get("/{site}/{device}", summary="a box: status, last stats, inventory, config, command history")
def get_device(ctx: Ctx, site: str, device: str) -> Json:
    with ctx.db.transaction() as conn:  # a transaction: commands left waiting by a stopped console expire
        view = devices.device_view(conn, site, device, ctx.cfg.stalled_after_s, expire=not ctx.read_only)
    if view is None:
        raise ApiError(404, f"no device {site}/{device} has been heard from")
    why = _why_read_only(ctx)
    view["commands"] = {"enabled": why is None, "why": why, "actions": list(devices.ARGS)}
    return Json(view)


@router.post(
    "/{site}/{device}/commands",
    summary="sign and send a command to the box; answers it stored as sent (then poll it)",
    status_code=202,
    responses=_ERRORS,
)
def post_command(ctx: Ctx, who: Who, site: str, device: str, body: CommandBody) -> Json:
    if ctx.fleet is None:
        raise ApiError(503, NO_FLEET)
    try:
        row = devices.send(ctx.fleet, ctx.db, site, device, body.action, body.args, who.name,
                           on_done=ctx.feed.notify)  # fmt: skip
    except devices.CommandRefused as err:
        raise ApiError(err.status, err.message) from err
    return Json(row, status_code=202)


@router.get("/{site}/{device}/commands/{command_id}", summary="one command and its answer", responses=_ERRORS)
def get_command(ctx: Ctx, site: str, device: str, command_id: str) -> Json:
    with ctx.db.connection() as conn:
        row = devices.command_row(conn, command_id)
    if row is None or (row["site"], row["device"]) != (site, device):
        raise ApiError(404, f"no command {command_id!r} for {site}/{device}")
    return Json(row)


@router.get(
    "/{site}/{device}/snapshot/{command_id}.jpg",
    summary="the picture a snapshot command brought back",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such snapshot"}},
)
def get_snapshot(ctx: Ctx, site: str, device: str, command_id: str) -> Response:
    with ctx.db.connection() as conn:
        jpeg = devices.snapshot_jpeg(conn, site, device, command_id)
    if jpeg is None:
        raise ApiError(404, f"no snapshot for command {command_id!r}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
