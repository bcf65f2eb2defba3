"""The duty officer's pages in Debian's headless Chromium (Playwright), at 1280 and 390 px.

One real console (`edge-agent console`, basic auth, loopback trust off) behind a
real Mosquitto, fed by a box built like the demo's (`rules/demo.yaml`): its
delivery path (`Outbox` + `MqttPublisher`) announces the village's name, time
zone and camera places in its retained status, and publishes alerts with JPEG
snapshots, line crossings and count aggregates as the agent does. The pages
must show them as a duty officer would use them: an alert arriving live, its
workflow to resolved with the audit trail surviving a reload, bulk actions, the
counts drawn, the cameras on the plan, times in the village's zone, and no
sideways scrolling on a phone.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.app.config import parse_config
from edge_agent.contract.status import announcement
from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.core.counts import CountReport
from edge_agent.core.types import Event, EventObject, SnapshotRef
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import Mosquitto
from tests.conftest import REPO
from tests.console_server import ConsoleProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
USER, PASSWORD = "duty", "correct horse battery"
DEMO = parse_config((REPO / "rules" / "demo.yaml").read_text(encoding="utf-8"))
ZONE = "Asia/Shanghai"  # the demo village's, announced by its box
assert DEMO.site.timezone == ZONE
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 15_000


class DemoBox:
    """The demo's box on the real delivery path: announces itself, then alerts, crossings, counts."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.topics = Topics("eagleeye", DEMO.site.id, DEMO.device.id)
        self.outbox = Outbox(tmp / "box.sqlite3", 16)
        cfg = MqttConfig(url=url, stats_interval_s=3600)
        self.publisher = MqttPublisher(cfg, self.outbox, self.topics, backoff=Backoff(0.2, 1.0),
                                       announce=announcement(DEMO))  # fmt: skip
        self.sink = OutboxSink(self.outbox, self.topics)
        self.publisher.start()
        self.seq = 0

    def event(self, camera: str, rule: str, kind: str, severity: str, label: str, started: str) -> Event:
        self.seq += 1
        img = np.full((360, 640, 3), 90, np.uint8)
        cv2.rectangle(img, (77, 220), (122, 266), (0, 255, 255), 2)
        jpeg = cv2.imencode(".jpg", img)[1].tobytes()
        event_id = f"{DEMO.device.id}-{camera}-{self.seq:04d}"
        ev = Event(
            event_id=event_id, phase="start", site=DEMO.site.id, device=DEMO.device.id, camera=camera,
            rule=rule, kind=kind, severity=severity, zone="road", label=label, score=0.71,
            objects=(EventObject(17, label, 0.71, (0.12, 0.61, 0.19, 0.74)),),
            started_at=started, ts=started, media_s=32.4, duration_s=0.0, details={},
            snapshot=SnapshotRef(self.topics.snapshot(event_id), hashlib.sha256(jpeg).hexdigest(), 640, 360),
        )  # fmt: skip
        self.sink.emit(ev, jpeg)
        return ev

    def alert(self, started: str = "2026-11-26T08:15:02.400Z") -> Event:
        return self.event("dump-corner", "dumping", "left_object", "alert", "suitcase", started)

    def crossing(self, started: str) -> Event:
        return self.event("lane", "passing-west", "line_cross", "info", "person", started)

    def count(self, start_ts: float, count: int) -> None:
        report = CountReport(
            camera="lane", rule="lane-walkers", zone=None, line="mid", labels=("person",), interval_s=20.0,
            interval_start_ts=start_ts, interval_end_ts=start_ts + 20, media_s=20.0, complete=True,
            count=count, by_label={"person": count}, directions={"in": count, "out": 0},
            emitted_ts=start_ts + 20,
        )  # fmt: skip
        self.sink.emit_count(report)

    def close(self) -> None:
        self.publisher.stop(2)
        self.outbox.close()


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleProcess, DemoBox]]:
    """Broker, console and the demo's box, shared by the tests here (each uses its own alerts)."""
    tmp = tmp_path_factory.mktemp("ui")
    broker = Mosquitto(tmp / "broker").start()
    web = {"auth": {"trust_loopback": False, "users": [{"name": USER, "password": PASSWORD}]}}
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    console = ConsoleProcess(tmp / "console", broker.url, f"sqlite:///{tmp}/c.sqlite3", web=web,
                             authorization=basic).start()  # fmt: skip
    box = DemoBox(tmp, broker.url)
    for cam in DEMO.cameras:
        box.publisher.board.set_camera_status(cam.id, "online")
    try:
        yield console, box
    finally:
        box.close()
        console.stop()
        broker.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_page(browser: Any, viewport: dict[str, int]) -> Any:
    ctx = browser.new_context(http_credentials={"username": USER, "password": PASSWORD}, viewport=viewport)
    ctx.set_default_timeout(WAIT_MS)
    return ctx.new_page()


def scroll_width(page: Any) -> int:
    return int(page.evaluate("document.scrollingElement.scrollWidth"))


def wait_stored(console: ConsoleProcess, event_id: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(i["event_id"] == event_id for i in console.api("/api/incidents?tab=all")["incidents"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"{event_id} never reached the console")


def test_an_alert_arrives_live_and_goes_new_acknowledged_dispatched_resolved_with_an_audit_trail(
    browser: Any, town: tuple[ConsoleProcess, DemoBox]
) -> None:
    console, box = town
    page = open_page(browser, WIDE)
    page.goto(console.url)
    page.wait_for_selector('#alerts[data-ready="1"]')
    page.wait_for_selector("#live.on")

    ev = box.alert()  # published after the page loaded: it must come by the live stream
    row = page.locator(f'#alerts tr[data-event-id="{ev.event_id}"]')
    row.wait_for()
    assert row.get_attribute("data-state") == "new"
    assert row.locator(".severity").inner_text() == "alert"
    assert "suitcase in road" in row.inner_text()
    # 08:15:02Z is 16:15:02 in the village, and the zone is named
    assert row.locator(".started").inner_text() == f"2026-11-26 16:15:02 {ZONE}"
    assert row.locator(".tta").inner_text().startswith("waiting")

    row.locator(".what").click()
    page.wait_for_url(f"**/incident/{ev.event_id}")
    page.wait_for_selector('main[data-ready="1"]')
    page.wait_for_selector('#boxes[data-boxes="1"]')
    assert page.locator("#state").get_attribute("data-state") == "new"
    assert f"2026-11-26 16:15:02 {ZONE}" in page.inner_text("#facts")
    assert "Demo village (demo-village)" in page.inner_text("#facts")
    assert page.locator("#timeline li").all_inner_texts()[0].startswith(f"start 2026-11-26 16:15:02 {ZONE}")

    page.click("#acknowledge")
    page.wait_for_selector('#state[data-state="acknowledged"]')
    assert not page.locator("#acknowledge").is_visible()  # what the state no longer allows goes
    page.click("#dispatch")
    page.fill("#assignee-name", "Wang Wei")
    page.click("#dispatch-send")
    page.wait_for_selector('#state[data-state="dispatched"]')
    assert page.inner_text("#assignee") == "assigned to Wang Wei"
    page.fill("#note", "bag taken away by the village committee")
    page.click("#resolve")
    page.wait_for_selector('#state[data-state="resolved"]')
    assert page.locator("#reopen").is_visible() and not page.locator("#resolve").is_visible()

    def trail() -> list[tuple[str | None, str]]:
        items = page.locator("#audit li")
        return [(items.nth(i).get_attribute("data-to-state"), items.nth(i).inner_text())
                for i in range(items.count())]  # fmt: skip

    before = trail()
    page.reload()
    page.wait_for_selector('main[data-ready="1"]')
    after = trail()
    assert after == before  # the trail is stored, not the page's memory
    assert [to for to, _ in after] == ["acknowledged", "dispatched", "resolved"]
    texts = [text for _, text in after]
    for text in texts:
        assert USER in text and ZONE in text
    assert "new → acknowledged" in texts[0]
    assert "acknowledged → dispatched (to Wang Wei)" in texts[1]
    assert "dispatched → resolved" in texts[2] and "bag taken away by the village committee" in texts[2]
    assert f"by {USER} (after " in page.inner_text("#facts")

    page.click("#back")
    row.wait_for()
    assert row.get_attribute("data-state") == "resolved"
    assert not row.locator(".tta").inner_text().startswith("waiting")  # the time it took to acknowledge
    page.context.close()


def test_info_records_have_their_own_tab_and_bulk_actions_move_several_alerts(
    browser: Any, town: tuple[ConsoleProcess, DemoBox]
) -> None:
    console, box = town
    crossing = box.crossing("2026-11-26T09:00:00.000Z")
    first, second = box.alert("2026-11-26T09:01:00.000Z"), box.alert("2026-11-26T09:02:00.000Z")
    for ev in (crossing, first, second):
        wait_stored(console, ev.event_id)
    page = open_page(browser, WIDE)
    page.goto(console.url + "#alerts")
    page.wait_for_selector('#alerts[data-ready="1"]')
    assert page.locator(f'#alerts tr[data-event-id="{crossing.event_id}"]').count() == 0
    page.click("#tab-info")
    page.wait_for_selector(f'#alerts tr[data-event-id="{crossing.event_id}"][data-severity="info"]')
    assert page.locator('#alerts tr[data-severity="alert"]').count() == 0
    page.click("#tab-alerts")
    page.wait_for_selector(f'#alerts tr[data-event-id="{first.event_id}"]')
    # open alerts come first, newest first among them
    ids = page.locator("#alerts tbody tr").evaluate_all("rows => rows.map(r => r.dataset.eventId)")
    assert ids.index(second.event_id) < ids.index(first.event_id)

    page.select_option('select[name="state"]', "new")  # a filter, kept across a reload
    page.wait_for_selector('#alerts[data-ready="1"]')
    page.reload()
    page.wait_for_selector('#alerts[data-ready="1"]')
    assert page.locator('select[name="state"]').input_value() == "new"
    for ev in (first, second):
        page.locator(f'#alerts tr[data-event-id="{ev.event_id}"] .pick input').check()
    assert page.inner_text("#selected-count") == "2 selected"
    page.click("#bulk-ack")
    page.wait_for_selector("#bulk-result:has-text('2 marked acknowledged')")
    for ev in (first, second):  # no longer new: they leave the filtered list
        page.locator(f'#alerts tr[data-event-id="{ev.event_id}"]').wait_for(state="detached")
        assert console.api(f"/api/incidents/{ev.event_id}")["state"] == "acknowledged"
    page.click("#clear")
    page.wait_for_selector(f'#alerts tr[data-event-id="{first.event_id}"][data-state="acknowledged"]')
    page.context.close()


def test_on_a_phone_the_list_and_the_alert_fit_390_px_and_the_buttons_work(
    browser: Any, town: tuple[ConsoleProcess, DemoBox]
) -> None:
    console, box = town
    ev = box.alert("2026-11-26T10:30:00.000Z")
    wait_stored(console, ev.event_id)
    page = open_page(browser, PHONE)
    page.goto(console.url + "#alerts")
    page.wait_for_selector('#alerts[data-ready="1"]')
    row = page.locator(f'#alerts tr[data-event-id="{ev.event_id}"]')
    row.wait_for()
    assert scroll_width(page) <= 390
    assert row.bounding_box()["width"] <= 390
    row.locator(".what").click()
    page.wait_for_selector('main[data-ready="1"]')
    page.wait_for_selector('#boxes[data-boxes="1"]')
    assert scroll_width(page) <= 390
    for name in ("#acknowledge", "#dispatch", "#resolve", "#false-alarm"):
        box_ = page.locator(name).bounding_box()
        assert box_["x"] >= 0 and box_["x"] + box_["width"] <= 390 and box_["height"] >= 40, name
    page.click("#false-alarm")
    page.wait_for_selector('#state[data-state="false_alarm"]')
    page.click("#reopen")
    page.wait_for_selector('#state[data-state="acknowledged"]')
    assert scroll_width(page) <= 390
    assert [a for a in page.locator("#audit li").evaluate_all("li => li.map(x => x.dataset.toState)")] == [
        "false_alarm", "acknowledged",
    ]  # fmt: skip
    page.context.close()


def test_the_counts_page_draws_the_demo_counts_per_hour_and_day(
    browser: Any, town: tuple[ConsoleProcess, DemoBox]
) -> None:
    console, box = town
    day = 1795996800.0  # 2026-11-30T00:00:00Z: 08:00 in the village
    # interval start -> people counted on the demo's lane line
    published = {day: 3, day + 20: 4, day + 3600: 5, day + 3 * 3600 + 40: 2, day - 86400 + 7200: 6}
    for start, n in published.items():
        box.count(start, n)
    deadline = time.monotonic() + 15
    while console.api("/api/status")["database"]["rows"].get("counts", 0) < len(published):
        assert time.monotonic() < deadline, "the counts never reached the console"
        time.sleep(0.1)

    for viewport in (WIDE, PHONE):
        page = open_page(browser, viewport)
        page.goto(console.url + "counts")
        page.wait_for_selector('#counts-page[data-ready="1"]')
        assert page.locator("#counts-error").is_hidden(), page.inner_text("#counts-error")
        day_chart = page.locator('#per-day[data-ready="1"]')
        hour_chart = page.locator('#per-hour[data-ready="1"]')
        assert day_chart.get_attribute("data-total") == str(sum(published.values()))
        assert day_chart.get_attribute("data-buckets") == "2"  # 29 and 30 November in the village
        # the hours of the last two days with counts, from the first to the last: 10:00 on the 29th .. 11:00
        assert hour_chart.get_attribute("data-total") == str(sum(published.values()))
        assert hour_chart.get_attribute("data-buckets") == str(24 + 2)
        assert ZONE in page.inner_text("#hour-range")
        total = page.locator('#totals tr[data-key="demo-village / lane / lane-walkers"] td.num')
        assert total.inner_text() == str(sum(published.values()))
        assert scroll_width(page) <= viewport["width"]
        page.context.close()

    page = open_page(browser, WIDE)
    page.goto(console.url + "counts?from=2026-11-30&to=2026-11-30")
    page.wait_for_selector('#counts-page[data-ready="1"]')
    assert page.locator("#per-day").get_attribute("data-total") == str(sum(published.values()) - 6)
    href = page.locator("#export-counts").get_attribute("href")
    assert href == "/api/export/counts.csv?from=2026-11-29T16%3A00%3A00Z&to=2026-11-30T16%3A00%3A00Z"
    csv = page.request.get(console.url.rstrip("/") + href)
    assert csv.ok and "lane-walkers" in csv.text()
    page.context.close()


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1280px", "390px"])
def test_the_map_places_the_demo_cameras_on_a_plan_with_their_health(
    browser: Any, town: tuple[ConsoleProcess, DemoBox], viewport: dict[str, int]
) -> None:
    console, box = town
    box.publisher.board.set_camera_status("market-street", "offline")
    page = open_page(browser, viewport)
    page.goto(console.url + "map")
    page.wait_for_selector('#map-page[data-ready="1"][data-mode="plan"]')  # no tile server in the tests
    for cam in DEMO.cameras:
        state = "offline" if cam.id == "market-street" else "online"
        page.wait_for_selector(
            f'#plan .camera[data-camera="{cam.id}"][data-state="{state}"]', timeout=WAIT_MS
        )
    page.wait_for_selector('#plan .site[data-site="demo-village"]')
    assert "Demo village" in (page.locator("#plan").text_content() or "")
    # placed by their coordinates: lane is north-west of dump-corner, market-street the southernmost
    spots = {cam.id: page.locator(f'#plan .camera[data-camera="{cam.id}"] circle').bounding_box()
             for cam in DEMO.cameras}  # fmt: skip
    assert spots["lane"]["x"] < spots["dump-corner"]["x"] and spots["lane"]["y"] < spots["dump-corner"]["y"]
    assert spots["market-street"]["y"] > max(spots["lane"]["y"], spots["dump-corner"]["y"])
    assert scroll_width(page) <= viewport["width"]
    page.context.close()
