"""The duty officer's page in Debian's headless Chromium (Playwright), fed by a real box and broker.

The console runs as `edge-agent console` with basic auth and loopback trust
off, so the browser logs in as a real user would and the workflow records that
user. The box is the project's delivery path (`Outbox` + `MqttPublisher`):
its alert (with a real JPEG) must appear on the open page without a reload, and
its camera going offline (the retained status the agent publishes) must show on
the health board, and so must a camera whose RTSP server is killed under a real
`edge-agent run`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.core.types import Event, EventObject, SnapshotRef
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import Mosquitto, mosquitto  # noqa: F401
from tests.console_server import ConsoleProcess
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory  # noqa: F401
from tests.test_agent_live import AgentProcess, agent_factory  # noqa: F401
from tests.test_agent_live import camera as live_camera

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
USER, PASSWORD = "duty", "correct horse battery"
TOKEN = "wall-screen-token-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def console(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[ConsoleProcess]:  # noqa: F811
    web = {"auth": {"trust_loopback": False, "users": [{"name": USER, "password": PASSWORD}],
                    "tokens": [{"name": "wall", "token": TOKEN}]}}  # fmt: skip
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    db_url = f"sqlite:///{tmp_path}/c.sqlite3"
    proc = ConsoleProcess(tmp_path / "console", mosquitto.url, db_url, web=web, authorization=basic)
    proc.start()
    yield proc
    proc.stop()


class Box:
    def __init__(self, tmp: Path, url: str) -> None:
        self.topics = Topics("eagleeye", "laohu", "edge-07")
        self.outbox = Outbox(tmp / "box.sqlite3", 16)
        cfg = MqttConfig(url=url, stats_interval_s=3600)
        self.publisher = MqttPublisher(cfg, self.outbox, self.topics, backoff=Backoff(0.2, 1.0))
        self.sink = OutboxSink(self.outbox, self.topics)
        self.publisher.start()

    def alert(self, seq: int) -> Event:
        img = np.full((360, 640, 3), 90, np.uint8)
        cv2.rectangle(img, (77, 220), (122, 266), (0, 255, 255), 2)
        jpeg = cv2.imencode(".jpg", img)[1].tobytes()
        event_id = f"edge-07-bridge-{seq:04d}"
        ev = Event(
            event_id=event_id, phase="start", site="laohu", device="edge-07", camera="bridge",
            rule="dumping", kind="left_object", severity="alert", zone="dump-corner", label="suitcase",
            score=0.71, objects=(EventObject(17, "suitcase", 0.71, (0.12, 0.61, 0.19, 0.74)),),
            started_at="2026-11-26T08:15:02.400Z", ts="2026-11-26T08:15:32.400Z", media_s=32.4,
            duration_s=30.0, details={},
            snapshot=SnapshotRef(self.topics.snapshot(event_id), hashlib.sha256(jpeg).hexdigest(), 640, 360),
        )  # fmt: skip
        self.sink.emit(ev, jpeg)
        return ev

    def close(self) -> None:
        self.publisher.stop(2)
        self.outbox.close()


@pytest.fixture
def box(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Box]:  # noqa: F811
    b = Box(tmp_path, mosquitto.url)
    yield b
    b.close()


def test_alert_appears_live_snapshot_loads_false_alarm_persists_and_camera_offline_shows(
    browser: Any, console: ConsoleProcess, box: Box
) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                              viewport={"width": 1280, "height": 900})  # fmt: skip
    page = ctx.new_page()
    page.goto(console.url)
    page.wait_for_selector('#alerts[data-ready="1"]')
    page.wait_for_selector("#live.on")
    assert page.locator("#alerts tbody tr").count() == 0

    ev = box.alert(1)  # published after the page loaded: it must arrive by the live stream
    row = page.locator(f'#alerts tr[data-event-id="{ev.event_id}"]')
    row.wait_for(timeout=15_000)
    assert row.locator(".severity").inner_text() == "alert"
    assert "suitcase in dump-corner" in row.inner_text()

    row.click()
    page.wait_for_selector('main[data-ready="1"]')
    # a property read, not a string to evaluate: the page's CSP refuses eval (script-src 'self')
    expect(page.locator("#snapshot")).to_have_js_property("naturalWidth", 640)
    page.wait_for_selector('#boxes[data-boxes="1"]')
    assert "sha256 is the one the event names" in page.inner_text("#snapshot-note")
    assert page.locator("#timeline li").all_inner_texts()[0].startswith("start")

    page.click("#false-alarm")
    page.wait_for_selector('#state[data-state="false_alarm"]')
    page.reload()
    page.wait_for_selector('main[data-ready="1"]')
    audit = page.locator('#audit li[data-to-state="false_alarm"]')
    assert USER in audit.inner_text() and "new → false alarm" in audit.inner_text()
    page.goto(console.url)
    page.wait_for_selector(f'#alerts tr[data-event-id="{ev.event_id}"][data-state="false_alarm"]')
    page.select_option('select[name="state"]', "open")  # open ones only: the dismissed alert goes
    page.wait_for_selector('#alerts[data-ready="1"]')
    row.wait_for(state="detached")
    page.select_option('select[name="state"]', "false_alarm")
    row.wait_for()

    box.publisher.board.set_camera_status("bridge", "online")
    page.goto(console.url + "#health")
    page.wait_for_selector('#health tr[data-device="laohu/edge-07"][data-state="online"]', timeout=15_000)
    page.wait_for_selector('#health [data-camera="bridge"][data-state="online"]', timeout=15_000)
    box.publisher.board.set_camera_status("bridge", "offline")  # retained, as when its RTSP drops
    cam = page.locator('#health [data-camera="bridge"][data-state="offline"]')
    cam.wait_for(timeout=15_000)
    assert "bridge: offline since" in cam.inner_text()
    ctx.close()


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_api_needs_a_login_checks_origin_and_never_logs_secrets(console: ConsoleProcess, box: Box) -> None:
    base = console.url.rstrip("/")
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    wrong = "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()
    assert _request(base + "/api/incidents")[0] == 401
    assert _request(base + "/api/incidents", headers={"Authorization": wrong})[0] == 401
    assert _request(base + "/api/incidents?token=wrong-token-0000000000")[0] == 401
    assert _request(base + "/api/me", headers={"Authorization": basic}) == (
        200,
        {"name": USER, "via": "basic"},
    )
    assert _request(base + f"/api/me?token={TOKEN}")[1] == {"name": "wall", "via": "token"}

    ev = box.alert(2)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, body = _request(base + "/api/incidents", headers={"Authorization": basic})
        if body.get("incidents"):
            break
        time.sleep(0.1)
    verdict_url = base + f"/api/incidents/{ev.event_id}/verdict"
    body = json.dumps({"verdict": "confirmed"}).encode()
    json_headers = {"Authorization": basic, "Content-Type": "application/json"}
    foreign = {**json_headers, "Origin": "http://evil.example"}
    assert _request(verdict_url, body, foreign)[0] == 403
    assert _request(verdict_url, body, {"Authorization": basic, "Content-Type": "text/plain"})[0] == 415
    status, out = _request(verdict_url, body, {**json_headers, "Origin": base})
    assert status == 200 and out["by"] == USER and out["verdict"] == "confirmed"
    spec = _request(base + "/api/openapi.json", headers={"Authorization": basic})[1]
    assert "/api/incidents/{event_id}/verdict" in spec["paths"]
    log = console.log()
    assert PASSWORD not in log and TOKEN not in log and "wrong-token" not in log


def test_health_board_shows_a_camera_going_offline_when_its_rtsp_server_is_killed(
    browser: Any,
    console: ConsoleProcess,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    agent_factory: Callable[..., AgentProcess],  # noqa: F811
) -> None:
    cam = rtsp_server_factory()
    agent_factory(mosquitto, [live_camera("gate", cam.url)])  # a real `edge-agent run` on a real stream
    ctx = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
    page = ctx.new_page()
    page.goto(console.url + "#health")
    online = '#health tr[data-device="testsite/edge-t"][data-state="online"] [data-camera="gate"]'
    page.wait_for_selector(online + '[data-state="online"]', timeout=60_000)
    cam.kill()
    page.wait_for_selector(online + '[data-state="offline"]', timeout=30_000)
    ctx.close()
