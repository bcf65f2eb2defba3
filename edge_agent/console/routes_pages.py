"""The pages (HTML, scripts, styles in `static/`) and the browser libraries from npm (`/vendor/`).

Names are matched against a fixed pattern before any file is opened, so no path leaves
its folder. The libraries come from `assets/node_modules` (`npm ci --prefix
edge_agent/console/assets`): the console never loads anything from another site.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from starlette.responses import FileResponse, RedirectResponse, Response

from edge_agent.console.web_state import ApiError

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
NODE_MODULES = HERE / "assets" / "node_modules"
VENDOR: dict[str, Path] = {
    "chart.umd.js": NODE_MODULES / "chart.js" / "dist" / "chart.umd.js",
    "leaflet.js": NODE_MODULES / "leaflet" / "dist" / "leaflet.js",
    "leaflet.css": NODE_MODULES / "leaflet" / "dist" / "leaflet.css",
}
_LEAFLET_IMAGE = re.compile(r"^images/[a-z0-9-]+\.png$")
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(html|js|css|svg|png)$")
TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
}
_PAGE_METHODS = ["GET", "HEAD"]

router = APIRouter(include_in_schema=False)


def _file(path: Path, name: str, cache: str = "no-cache") -> Response:
    if not path.is_file():
        raise ApiError(404, f"no file {name}")
    # no-cache: the browser may keep a copy but asks each time (an upgrade shows at once)
    return FileResponse(path, media_type=TYPES[name.rsplit(".", 1)[1]], headers={"Cache-Control": cache})


def page(name: str) -> Response:
    return _file(STATIC_DIR / name, name)


@router.api_route("/", methods=_PAGE_METHODS)
def list_page() -> Response:
    return page("console.html")


@router.api_route("/incident/{event_id}", methods=_PAGE_METHODS)
def incident_page(event_id: str) -> Response:
    return page("alert.html")


@router.api_route("/alert/{event_id}", methods=_PAGE_METHODS)
def old_incident_page(event_id: str) -> Response:
    """The first release's address of an alert's page, in links people kept."""
    return RedirectResponse(f"/incident/{quote(event_id, safe='')}", status_code=301)


@router.api_route("/device/{site}/{device}", methods=_PAGE_METHODS)
def device_page(site: str, device: str) -> Response:
    return page("device.html")


@router.api_route("/counts", methods=_PAGE_METHODS)
def counts_page() -> Response:
    return page("counts.html")


@router.api_route("/map", methods=_PAGE_METHODS)
def map_page() -> Response:
    return page("map.html")


@router.api_route("/static/{name}", methods=_PAGE_METHODS)
def static_file(name: str) -> Response:
    if not _STATIC_NAME.match(name):
        raise ApiError(404, f"no file {name}")
    return page(name)


@router.api_route("/vendor/{name:path}", methods=_PAGE_METHODS)
def vendor_file(name: str) -> Response:
    if name in VENDOR:
        path = VENDOR[name]
    elif _LEAFLET_IMAGE.match(name):  # leaflet.css names its images relative to itself
        path = NODE_MODULES / "leaflet" / "dist" / name
    else:
        raise ApiError(404, f"no file {name}")
    if not path.is_file():
        raise ApiError(404, f"{name} is missing: run npm ci --prefix edge_agent/console/assets")
    return _file(path, name, "max-age=86400")
