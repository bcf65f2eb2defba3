"""A box's page in the console, end to end, in Debian's headless Chromium (Playwright).

A real Mosquitto with passwords, a real `edge-agent run` on the RTSP test camera (which wants
a login) with remote operations on, and a real `edge-agent console` holding the town's key
(`fleet.private_key_file`). The duty officer opens the box from the health board, sees its
inventory and its config with every password shown as `***`, adds a rule, looks at the diff,
pushes it and sees `applied` and the history row, which a reload keeps; the box's file has
the new rule and its own passwords back, and no password ever reached the console's
database. A snapshot shows the camera's picture.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from edge_agent.console.db import Database
from edge_agent.console.records import parse_message
from edge_agent.console.store import write_batch
from edge_agent.console.tables import commands
from edge_agent.contract.commands import generate_keys
from tests.broker import Mosquitto, make_password_file, mosquitto_factory  # noqa: F401
from tests.console_server import ConsoleProcess
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory, wait_until  # noqa: F401
from tests.test_agent_live import camera
from tests.test_commands_live import USERS, Box
from tests.test_console_ui import CHROMIUM, CHROMIUM_ARGS, PHONE, WIDE, scroll_width
from tests.test_console_web import db, serve  # noqa: F401

DUTY, DUTY_PASSWORD = "duty", "correct horse battery"
CAMERA_PASSWORD = "cam-Secret-77"  # the test camera's
WAIT_MS = 30_000


@pytest.fixture
def town(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    model_ready: Path,
) -> Iterator[tuple[ConsoleProcess, Box]]:
    broker = mosquitto_factory(password_file=make_password_file(tmp_path / "passwd", USERS)).start()
    keys = tmp_path / "keys"
    keys.mkdir()
    generate_keys(keys / "town.key", keys / "town.pub")
    server = rtsp_server_factory(user="admin", password=CAMERA_PASSWORD)
    (tmp_path / "box").mkdir()
    box = Box(tmp_path / "box", broker, keys / "town.pub", [])
    # secrets written into the file itself: the broker password and the camera's in its URL
    box.base["mqtt"] = {**box.base["mqtt"], "password": USERS["edge-t"]}
    del box.base["mqtt"]["password_file"]
    box.config.write_text(box.text([camera("cam", server.url_with())]))
    (tmp_path / "platform.pass").write_text(USERS["platform"] + "\n")
    mqtt = {"url": broker.url, "client_id": "console-devices", "username": "platform",
            "password_file": str(tmp_path / "platform.pass")}  # fmt: skip
    web = {"auth": {"trust_loopback": False, "users": [{"name": DUTY, "password": DUTY_PASSWORD}]}}
    basic = "Basic " + base64.b64encode(f"{DUTY}:{DUTY_PASSWORD}".encode()).decode()
    console = ConsoleProcess(
        tmp_path / "console", broker.url, f"sqlite:///{tmp_path}/console.sqlite3", web=web,
        authorization=basic,
        extra={"mqtt": mqtt, "fleet": {"private_key_file": str(keys / "town.key"), "timeout_s": 20}},
    )  # fmt: skip
    console.start()
    box.start()
    try:
        yield console, box
    finally:
        box.kill()
        console.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_page(browser: Any, viewport: dict[str, int]) -> Any:
    ctx = browser.new_context(
        http_credentials={"username": DUTY, "password": DUTY_PASSWORD}, viewport=viewport
    )
    ctx.set_default_timeout(WAIT_MS)
    return ctx.new_page()


def box_online(console: ConsoleProcess) -> bool:
    devices = console.api("/api/health")["devices"]
    return any(
        d["device"] == "edge-t"
        and d["state"] == "online"
        and [c["state"] for c in d["cameras"]] == ["online"]
        for d in devices
    )


def stored_text(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT args, COALESCE(message, ''), COALESCE(data, '') FROM commands").fetchall()
    return "\n".join("\n".join(r) for r in rows)


def test_the_device_page_reads_edits_pushes_and_keeps_the_history(
    browser: Any, town: tuple[ConsoleProcess, Box]
) -> None:
    console, box = town
    wait_until(lambda: box_online(console), 60, "the box and its camera online on the console")
    t0 = time.monotonic()
    page = open_page(browser, WIDE)
    page.goto(console.url + "#health")
    page.locator('#health tr[data-device="testsite/edge-t"] a.device-link').click()
    page.wait_for_url("**/device/testsite/edge-t")
    page.wait_for_selector('#device-page[data-ready="1"]')
    assert page.locator("#commands-off").is_hidden()

    # the page asks the box at once: inventory and config arrive
    page.wait_for_selector('#inventory dd[data-key="hostname"]:not(:text-is("–"))')
    assert page.inner_text('#inventory dd[data-key="version"]') not in ("", "–")
    assert "cam: online" in page.inner_text('#inventory dd[data-key="cameras"]')
    page.wait_for_selector("#config-meta[data-sha256]")
    assert page.get_attribute("#config-meta", "data-sha256") == box.config_sha()
    text = page.input_value("#config")
    assert "admin:***@" in text and "password: '***'" in text
    assert CAMERA_PASSWORD not in text and USERS["edge-t"] not in text

    # add a rule: the diff shows it, the push asks first, then the box applies it
    cfg = yaml.safe_load(text)
    cfg["cameras"][0]["rules"].append(
        {"id": "walkers", "kind": "presence", "zone": "path", "labels": ["person"]}
    )
    page.fill("#config", yaml.safe_dump(cfg))
    page.click("#show-diff")
    added = page.locator("#diff .add").all_inner_texts()
    assert any("id: walkers" in line for line in added), added
    assert not page.locator("#diff .del").count()
    page.click("#push")
    page.wait_for_selector("#confirm:not([hidden])")
    page.click("#push-confirm")
    page.wait_for_selector('#push-result[data-state="applied"]', timeout=60_000)
    row = page.locator('#history tr[data-action="config-set"]').first
    assert row.get_attribute("data-state") == "applied"
    assert row.locator(".who").inner_text() == DUTY
    # the box runs the new rule with its own passwords put back in place
    on_box = yaml.safe_load(box.config.read_text())
    assert [r["id"] for r in on_box["cameras"][0]["rules"]] == ["people", "walkers"]
    assert on_box["cameras"][0]["url"] == cfg["cameras"][0]["url"].replace("***", CAMERA_PASSWORD)
    assert on_box["mqtt"]["password"] == USERS["edge-t"]
    # the page reads the new config back
    page.wait_for_function(
        "sha => document.getElementById('config-meta').dataset.sha256 === sha", arg=box.config_sha()
    )

    # the history is stored, not the page's memory
    page.reload()
    page.wait_for_selector('#device-page[data-ready="1"]')
    page.wait_for_selector('#history tr[data-action="config-set"][data-state="applied"]')
    actions = page.locator("#history tbody tr").evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert "ping" in actions and "config-get" in actions

    # a snapshot: the camera's picture on the page
    page.select_option("#camera", "cam")
    page.click("#snapshot")
    page.wait_for_selector('#snapshot-result[data-state="applied"]')
    page.wait_for_function("() => { const i = document.getElementById('snapshot-img');"
                           " return !i.hidden && i.complete && i.naturalWidth >= 320; }")  # fmt: skip
    page.context.close()

    # on a phone: nothing scrolls sideways
    phone = open_page(browser, PHONE)
    phone.goto(console.url + "device/testsite/edge-t")
    phone.wait_for_selector('#history tr[data-action="config-set"]')
    assert scroll_width(phone) <= PHONE["width"]
    phone.context.close()
    took = time.monotonic() - t0

    stored = stored_text(Path(console.config.parent.parent / "console.sqlite3"))
    assert "walkers" in stored and CAMERA_PASSWORD not in stored and USERS["edge-t"] not in stored
    assert CAMERA_PASSWORD not in box.log() and CAMERA_PASSWORD not in console.log()
    assert took < 60, took


# --- the API without a box: no key, read-only, a broker that cannot be reached ---------------


def known_box(database: Database) -> None:
    record = parse_message(
        "eagleeye",
        "eagleeye/v1/laohu/edge-01/status",
        b'{"state": "online", "since": "2026-11-27T08:00:00.000Z"}',
    )
    with database.transaction() as conn:
        write_batch(conn, [record], time.time())


def test_without_a_fleet_key_the_page_is_read_only_and_says_why(
    browser: Any,
    db: Database,  # noqa: F811
) -> None:
    known_box(db)
    srv = serve(db)
    try:
        view = httpx.get(srv.url + "api/devices/laohu/edge-01").json()
        assert view["status"]["state"] == "online" and view["history"] == [] and view["inventory"] is None
        assert view["commands"]["enabled"] is False and "fleet.private_key_file" in view["commands"]["why"]
        r = httpx.post(srv.url + "api/devices/laohu/edge-01/commands", json={"action": "ping"})
        assert r.status_code == 503 and "fleet.private_key_file" in r.json()["error"]
        assert httpx.get(srv.url + "api/devices/laohu/nobody").status_code == 404
        page = browser.new_page()
        page.goto(srv.url + "device/laohu/edge-01")
        page.wait_for_selector('#device-page[data-ready="1"]')
        assert "fleet.private_key_file" in page.inner_text("#commands-off")
        assert page.locator("#push").is_disabled() and page.locator("#snapshot").is_disabled()
        assert page.locator("#history-empty").is_visible()
        page.close()
    finally:
        srv.stop()
    with db.connection() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(commands)).scalar() == 0


def test_commands_are_checked_stored_and_a_broker_that_cannot_be_reached_is_their_answer(
    tmp_path: Path,
    db: Database,  # noqa: F811
) -> None:
    known_box(db)
    generate_keys(tmp_path / "town.key", tmp_path / "town.pub")
    fleet = f"fleet: {{private_key_file: '{tmp_path / 'town.key'}', timeout_s: 5}}"
    srv = serve(db, extra=fleet)
    url = srv.url + "api/devices/laohu/edge-01/commands"
    try:
        for body, status, word in [
            ({"action": "reboot"}, 422, "action"),
            ({"action": "config-set"}, 422, "args.config"),
            ({"action": "snapshot", "args": {"camera": "cam", "x": "1"}}, 422, "args.x"),
            ({"action": "model-update", "args": {"name": " "}}, 422, "args.name"),
        ]:
            r = httpx.post(url, json=body)
            assert r.status_code == status and word in r.json()["error"], (body, r.text)
        r = httpx.post(srv.url + "api/devices/laohu/nobody/commands", json={"action": "ping"})
        assert r.status_code == 404
        secret = "version: 1\nmqtt: {url: 'mqtt://box:hunter2@broker'}\n"
        r = httpx.post(url, json={"action": "config-set", "args": {"config": secret}})
        assert r.status_code == 202, r.text
        sent = r.json()
        assert sent["state"] == "sent" and sent["who"] == "loopback" and "hunter2" not in r.text
        deadline = time.monotonic() + 20
        while (row := httpx.get(f"{url}/{sent['id']}").json())["state"] == "sent":
            assert time.monotonic() < deadline, row
            time.sleep(0.1)
        assert row["state"] == "failed"
        assert row["message"].startswith("not sent: cannot reach the MQTT broker"), row
        assert row["args"]["config"] == "version: 1\nmqtt: {url: 'mqtt://box:***@broker'}\n"
        history = httpx.get(srv.url + "api/devices/laohu/edge-01").json()["history"]
        assert [(h["id"], h["action"], h["state"]) for h in history] == [(sent["id"], "config-set", "failed")]
        assert httpx.get(f"{srv.url}api/devices/laohu/edge-01/snapshot/{sent['id']}.jpg").status_code == 404
    finally:
        srv.stop()
    srv = serve(db, read_only=True, extra=fleet)
    try:
        r = httpx.post(url.replace(url.split("/api/")[0], srv.url.rstrip("/")), json={"action": "ping"})
        assert (r.status_code, r.json()) == (403, {"error": "read-only console"})
        view = httpx.get(srv.url + "api/devices/laohu/edge-01").json()
        assert view["commands"]["enabled"] is False and "read-only" in view["commands"]["why"]
    finally:
        srv.stop()
