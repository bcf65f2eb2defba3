"""The zone drawing page, driven in a real headless Chromium (Debian's `chromium` + Playwright).

The config under test is a copy of fixtures/walkway.yaml with its camera URL
pointing at the fixture clip and an mqtt section that uses `${VAR}`, so every
save is checked for keeping comments, formatting and variable references.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.tools.config_edit import SaveError, apply_shapes, read_shapes
from edge_agent.tools.zones_page import ZonesServer, run
from tests.conftest import FIXTURES

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VAR = "EDGE_ZONES_TEST_USER"
MQTT_SECTION = (
    f"mqtt:\n  url: mqtt://127.0.0.1:1883\n  username: ${{{VAR}}}   # from the service's env file\n"
)


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    text = (FIXTURES / "walkway.yaml").read_text(encoding="utf-8")
    text = text.replace("url: fixtures/walkway-a.mp4", f"url: {FIXTURES / 'walkway-a.mp4'}")
    text = text.replace("cameras:\n", MQTT_SECTION + "cameras:\n", 1)
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def server(cfg_path: Path) -> Iterator[ZonesServer]:
    srv = ZonesServer(cfg_path, None, "127.0.0.1", 0, None)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make apt)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url)
    page.wait_for_selector('#canvas[data-ready="1"]', timeout=15_000)
    return page


@pytest.fixture
def page(browser: Any, server: ZonesServer) -> Iterator[Any]:
    p = open_page(browser, server.url)
    yield p
    p.close()


def at(page: Any, rx: float, ry: float) -> tuple[float, float]:
    """Page coordinates of a relative point of the camera image."""
    box = page.locator("#canvas").bounding_box()
    return box["x"] + rx * box["width"], box["y"] + ry * box["height"]


def save(page: Any, status: int) -> None:
    with page.expect_response(lambda r: r.url.endswith("/api/zones")) as info:
        page.click("#save")
    assert info.value.status == status, info.value.text()


def camera(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8"))["cameras"][0])


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    old, new = before.splitlines(), after.splitlines()
    return [ln for ln in old if ln not in new], [ln for ln in new if ln not in old]


def validate_cli(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, VAR: "installer"}
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "validate", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# --- in the browser ----------------------------------------------------------------


def test_page_shows_the_camera_frame_and_its_shapes(page: Any) -> None:
    assert page.locator("#status").text_content() == ""
    assert page.locator('#shapes li[data-kind="zone"]').count() == 2
    assert page.locator('#shapes li[data-kind="line"][data-name="mid"]').count() == 1
    assert page.locator('#shapes li[data-kind="mask"]').count() == 1
    # the canvas has the camera's aspect ratio (768x576)
    box = page.locator("#canvas").bounding_box()
    assert box["height"] / box["width"] == pytest.approx(576 / 768, abs=0.01)


def test_draw_a_polygon_name_it_and_save(page: Any, cfg_path: Path) -> None:
    before = cfg_path.read_text(encoding="utf-8")
    corners = [(0.2, 0.15), (0.4, 0.15), (0.4, 0.28), (0.2, 0.28)]
    page.click("#new-zone")
    for rx, ry in corners:
        page.mouse.click(*at(page, rx, ry))
    page.fill("#name", "bins")
    save(page, 200)
    page.wait_for_selector("#status.ok")

    after = cfg_path.read_text(encoding="utf-8")
    polygon = camera(cfg_path)["zones"]["bins"]["polygon"]
    assert len(polygon) == 4
    for (x, y), (ex, ey) in zip(polygon, corners, strict=True):
        assert x == pytest.approx(ex, abs=0.01) and y == pytest.approx(ey, abs=0.01)
        assert round(x, 4) == x and round(y, 4) == y
    # one line added, nothing else touched: comments, flow style and ${VAR} all survive
    removed, added = changed_lines(before, after)
    assert removed == [] and len(added) == 1 and added[0].startswith("      bins: {polygon: [[0.2")
    assert "# a window of the building, as a privacy-mask example" in after
    assert "# Rules the walkway golden files are made with" in after
    assert f"username: ${{{VAR}}}   # from the service's env file" in after
    assert (cfg_path.parent / "config.yaml.bak").read_text(encoding="utf-8") == before
    result = validate_cli(cfg_path)
    assert result.returncode == 0, result.stderr


def test_dragging_a_point_moves_just_that_point(page: Any, cfg_path: Path) -> None:
    before = cfg_path.read_text(encoding="utf-8")
    old = camera(cfg_path)
    page.mouse.move(*at(page, 0.85, 0.17))
    page.mouse.down()
    page.mouse.move(*at(page, 0.8, 0.1), steps=8)
    page.mouse.up()
    save(page, 200)

    new = camera(cfg_path)
    path_old, path_new = old["zones"]["path"]["polygon"], new["zones"]["path"]["polygon"]
    assert path_new[2] == [pytest.approx(0.8, abs=0.01), pytest.approx(0.1, abs=0.01)]
    assert path_new[:2] + path_new[3:] == path_old[:2] + path_old[3:]
    assert new["zones"]["lawn"] == old["zones"]["lawn"]
    assert new["lines"] == old["lines"] and new["masks"] == old["masks"]
    removed, added = changed_lines(before, cfg_path.read_text(encoding="utf-8"))
    assert len(removed) == 1 and len(added) == 1 and removed[0].lstrip().startswith("path:")


def test_delete_a_point_by_right_click_and_a_mask_by_button(page: Any, cfg_path: Path) -> None:
    page.mouse.click(*at(page, 0.85, 0.17), button="right")
    page.click('#shapes li[data-kind="mask"]')
    page.click("#delete-shape")
    save(page, 200)
    cam = camera(cfg_path)
    assert len(cam["zones"]["path"]["polygon"]) == 7
    assert [0.85, 0.17] not in cam["zones"]["path"]["polygon"]
    assert cam["masks"] == []


def test_invalid_save_is_refused_and_the_file_left_alone(page: Any, cfg_path: Path) -> None:
    before = cfg_path.read_bytes()
    page.click("#new-zone")
    page.mouse.click(*at(page, 0.2, 0.15))
    page.mouse.click(*at(page, 0.4, 0.15))
    page.fill("#name", "tiny")
    save(page, 400)
    page.wait_for_selector("#status.error")
    assert "at least 3 points" in page.locator("#problems").text_content()
    assert cfg_path.read_bytes() == before
    assert not (cfg_path.parent / "config.yaml.bak").exists()


def test_live_detections_are_drawn(page: Any, model_ready: Path) -> None:
    page.check("#detections")
    page.wait_for_selector("#canvas[data-detections]", timeout=30_000)
    assert int(page.locator("#canvas").get_attribute("data-detections")) >= 0
    page.uncheck("#detections")


def test_token_page_loads_with_the_token_url(browser: Any, cfg_path: Path) -> None:
    srv = ZonesServer(cfg_path, None, "0.0.0.0", 0, "s3cret-token")
    srv.start()
    try:
        url = f"http://127.0.0.1:{srv.port}"
        # the page, its script and stylesheet and the image all get through with the token URL
        p = open_page(browser, f"{url}/?token=s3cret-token")
        assert "No camera image" not in (p.locator("#status").text_content() or "")
        assert p.locator('#shapes li[data-kind="zone"]').count() == 2
        p.close()
    finally:
        srv.stop()


# --- the HTTP API ------------------------------------------------------------------


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310 (loopback test server)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def post_json(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, body = fetch(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    return status, json.loads(body)


def test_binding_off_loopback_without_a_token_is_refused(
    cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="--token"):
        ZonesServer(cfg_path, None, "0.0.0.0", 0, None)
    args = argparse.Namespace(config=str(cfg_path), camera=None, port=0, bind="0.0.0.0", token=None)
    assert run(args) == 2
    assert "--token" in capsys.readouterr().err


def test_with_a_token_every_request_needs_it(cfg_path: Path) -> None:
    srv = ZonesServer(cfg_path, None, "0.0.0.0", 0, "s3cret-token")
    srv.start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        assert srv.url.endswith("?token=s3cret-token")
        assert fetch(f"{base}/api/config")[0] == 401
        assert fetch(f"{base}/")[0] == 401
        assert fetch(f"{base}/api/config?token=wrong")[0] == 403
        assert fetch(f"{base}/api/config?token=s3cret-token")[0] == 200
        assert fetch(f"{base}/api/config", headers={"X-Edge-Agent-Token": "s3cret-token"})[0] == 200
        shapes = json.loads(fetch(f"{base}/api/config?token=s3cret-token")[1])
        status, _ = post_json(f"{base}/api/zones", shapes)
        assert status == 401
        assert not (cfg_path.parent / "config.yaml.bak").exists()
    finally:
        srv.stop()


def test_snapshot_is_the_camera_frame(server: ZonesServer) -> None:
    import cv2
    import numpy as np

    status, body = fetch(f"{server.url}api/snapshot.jpg?camera=walkway")
    assert status == 200
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[:2] == (576, 768)


def test_detections_api_returns_relative_boxes(server: ZonesServer, model_ready: Path) -> None:
    status, body = fetch(f"{server.url}api/detections?camera=walkway")
    assert status == 200, body
    data = json.loads(body)
    assert (data["width"], data["height"]) == (768, 576)
    for det in data["detections"]:
        assert all(0.0 <= v <= 1.0 for v in det["box"])
        assert isinstance(det["label"], str) and 0.0 < det["score"] <= 1.0


def test_stale_revision_and_foreign_requests_are_refused(server: ZonesServer, cfg_path: Path) -> None:
    before = cfg_path.read_bytes()
    shapes = json.loads(fetch(f"{server.url}api/config")[1])
    status, body = post_json(f"{server.url}api/zones", {**shapes, "revision": "0" * 16})
    assert status == 409 and "changed" in body["problems"][0]["message"]
    # a form post from another site, and a page that reached us under a foreign DNS name
    assert fetch(f"{server.url}api/zones", b"x=1", {"Content-Type": "text/plain"})[0] == 415
    assert fetch(f"{server.url}api/config", headers={"Host": f"evil.example:{server.port}"})[0] == 403
    assert cfg_path.read_bytes() == before


def test_unknown_camera_and_unreachable_camera(server: ZonesServer, cfg_path: Path) -> None:
    assert fetch(f"{server.url}api/config?camera=nope")[0] == 404
    text = cfg_path.read_text(encoding="utf-8").replace(str(FIXTURES / "walkway-a.mp4"), "/nonexistent.mp4")
    cfg_path.write_text(text, encoding="utf-8")
    status, body = fetch(f"{server.url}api/snapshot.jpg?camera=walkway")
    assert status == 502 and b"cannot open" in body


# --- the YAML editing, without a server ----------------------------------------------


def test_apply_shapes_rounds_and_keeps_variables(cfg_path: Path) -> None:
    text = cfg_path.read_text(encoding="utf-8")
    shapes = read_shapes(text, "walkway")
    shapes["zones"]["gate"] = {"polygon": [[0.123456, 0.1], [0.3, 0.1], [0.3, 0.299999]]}
    shapes["lines"]["mid"]["points"][0] = [0.5, 0.2]
    out = apply_shapes(text, "walkway", shapes)
    cam = yaml.safe_load(out)["cameras"][0]
    assert cam["zones"]["gate"]["polygon"] == [[0.1235, 0.1], [0.3, 0.1], [0.3, 0.3]]
    assert cam["lines"]["mid"]["points"] == [[0.5, 0.2], [0.5, 0.75]]
    assert f"${{{VAR}}}" in out


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"zones": {"z": {"polygon": [[0.1, 0.1], [0.2, "x"]]}}}, "expected [x, y] numbers"),
        ({"zones": {" z": {"polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]}}}, "no outer spaces"),
        ({"masks": "all"}, "expected a list of polygons"),
    ],
)
def test_malformed_payloads_name_the_problem(cfg_path: Path, payload: dict[str, Any], message: str) -> None:
    with pytest.raises(SaveError, match=re.escape(message)):
        apply_shapes(cfg_path.read_text(encoding="utf-8"), "walkway", payload)


def test_saved_file_keeps_its_mode(server: ZonesServer, cfg_path: Path) -> None:
    cfg_path.chmod(0o600)
    shapes = json.loads(fetch(f"{server.url}api/config")[1])
    del shapes["masks"][0]
    status, body = post_json(f"{server.url}api/zones", shapes)
    assert status == 200 and body["changed"]
    assert cfg_path.stat().st_mode & 0o777 == 0o600
    assert (cfg_path.parent / "config.yaml.bak").stat().st_mode & 0o777 == 0o600
    assert not [p for p in cfg_path.parent.iterdir() if p.name.endswith(".tmp")]
    shutil.copy(cfg_path, cfg_path.parent / "saved.yaml")
    assert validate_cli(cfg_path.parent / "saved.yaml").returncode == 0
