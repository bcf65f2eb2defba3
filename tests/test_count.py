"""The `count` rule: scripted tracks for the counting logic, the real model on the walkway
clips against the hand counts in fixtures/README.md, restart safety on a real outbox, and
the aggregates through a real Mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from edge_agent.app.config import CameraConfig
from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from edge_agent.core.counts import CountReport
from edge_agent.core.types import Frame
from edge_agent.delivery.count_store import CountStore
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from edge_agent.pipeline.detect.scripted import boxes
from edge_agent.pipeline.rules.base import Aggregating, Scene
from edge_agent.pipeline.rules.engine import RuleEngine
from edge_agent.pipeline.track.tracker import Tracker
from tests.broker import Mosquitto, Subscriber, mosquitto  # noqa: F401
from tests.conftest import FIXTURES, REPO

LABELS = ("person", "car")
W, H = 400, 300
FPS = 5.0
TOPICS = Topics("eagleeye", "campus", "edge-fixture")
Row = tuple[float, float, float, float, float, int]


def camera(**rule: object) -> CameraConfig:
    spec: dict[str, object] = {"id": "visits", "kind": "count", "zone": "bins", "interval_s": 10}
    spec.update(rule)
    return CameraConfig.model_validate(
        {
            "id": "cam",
            "url": "x.mp4",
            "zones": {"bins": {"polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]}},
            "lines": {"gate": {"points": [[0.5, 0.0], [0.5, 1.0]]}},
            "rules": [spec],
        }
    )


def person(x: float, y: float = 260.0) -> Row:
    return (x - 15, y - 80, x + 15, y, 0.9, 0)


def run(
    cam: CameraConfig, script: Callable[[float], list[Row]], seconds: float, t0: float = 1e9
) -> list[CountReport]:
    engine = RuleEngine(cam, 0.3)
    tracker = Tracker()
    out: list[CountReport] = []
    for i in range(int(seconds * FPS)):
        t = i / FPS
        frame = Frame("cam", i, t, t0 + t, np.zeros((H, W, 3), np.uint8))
        assert engine.step(Scene(frame, tracker.update(boxes(script(t)), t), LABELS)) == []
        out.extend(engine.take_counts()[0])
    out.extend(engine.close_counts(seconds))
    return out


def walk(t: float, t0: float, t1: float, x0: float, x1: float) -> float:
    return x0 + (x1 - x0) * min(max((t - t0) / (t1 - t0), 0.0), 1.0)


def test_each_track_entering_the_zone_counts_once_per_interval() -> None:
    def script(t: float) -> list[Row]:
        rows = [person(walk(t, 0, 4, 390, 100))]  # enters at ~2.4 s and stays
        if 2 <= t < 10:  # enters, leaves, comes back: still one
            x = walk(t, 2, 5.5, 100, 250) if t < 5.5 else walk(t, 5.5, 9, 250, 100)
            rows.append(person(x, 200))
        if t >= 12:
            rows.append(person(walk(t, 12, 16, 390, 150), 230))
        return rows

    reports = run(camera(), script, 25)
    assert [(r.count, r.complete) for r in reports] == [(2, True), (1, True), (0, False)]
    assert reports[0].by_label == {"person": 2}
    assert reports[0].interval_start_ts == 1e9 and reports[0].interval_end_ts == 1e9 + 10
    for r in reports:
        assert validate("count", r.to_dict("campus", "edge-fixture")) == []


def test_line_counts_each_direction_apart() -> None:
    def script(t: float) -> list[Row]:
        return [
            person(walk(t, 0, 3, 350, 50)),
            person(walk(t, 1, 4, 50, 350), 200),
            person(walk(t, 5, 8, 350, 50), 150),
        ]

    (report,) = run(camera(zone=None, line="gate"), script, 9.8)
    # the line runs top to bottom: "in" is from its left (the picture's right) to its right
    assert report.directions == {"in": 2, "out": 1}
    assert report.count == 3 and not report.complete


def test_intervals_follow_the_clock_not_the_first_frame() -> None:
    # live: the first frame at hh:mm:07 closes the interval at hh:mm:10, then every 10 s
    reports = run(camera(), lambda t: [], 15, t0=1_800_000_007.0)
    assert [r.interval_start_ts for r in reports] == [1_800_000_000.0, 1_800_000_010.0, 1_800_000_020.0]
    assert [r.complete for r in reports] == [True, True, False]


def test_dwell_histogram_counts_who_left_in_the_interval() -> None:
    def script(t: float) -> list[Row]:
        rows = []
        if t < 3:
            rows.append(person(100))  # stays ~3 s
        if t < 8:
            rows.append(person(150, 200))  # ~8 s
        return rows

    (report, *_) = run(camera(dwell_bins_s=[5, 30]), script, 20)
    assert report.dwell_counts == (1, 1, 0)


def test_config_needs_one_place_to_count() -> None:
    with pytest.raises(ValidationError, match="exactly one of zone or line"):
        camera(zone=None)
    with pytest.raises(ValidationError, match="exactly one of zone or line"):
        camera(line="gate")
    with pytest.raises(ValidationError, match="ascending"):
        camera(dwell_bins_s=[30, 5])


def test_a_restart_resumes_the_interval_and_never_publishes_it_twice(tmp_path: Path) -> None:
    """Two agent lives on one outbox: counts before the restart add up, the interval goes out once."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", 8)
    store = CountStore(tmp_path / "outbox.counts.sqlite3")
    sink = OutboxSink(outbox, TOPICS, store)

    def life(script: Callable[[float], list[Row]], t_from: float, t_to: float) -> None:
        engine = RuleEngine(camera(), 0.3)
        (kind,) = [r.kind for r in engine.runners if isinstance(r.kind, Aggregating)]
        kind.resume = lambda start: sink.resume_count("cam", "visits", start)
        tracker = Tracker()
        for i in range(int(t_from * FPS), int(t_to * FPS)):
            t = i / FPS
            frame = Frame("cam", i, t, 1e9 + t, np.zeros((H, W, 3), np.uint8))
            engine.step(Scene(frame, tracker.update(boxes(script(t)), t), LABELS))
            closed, running = engine.take_counts()
            for r in closed:
                sink.emit_count(r)
            for r in running:
                sink.checkpoint_count(r)

    first = lambda t: [person(walk(t, 0, 2, 390, 100))]  # noqa: E731
    second = lambda t: [person(walk(t, 5, 7, 390, 150), 200)]  # noqa: E731
    life(first, 0, 4)  # one person in, then the agent stops (no close: a crash)
    life(second, 4, 12)  # restarted in the same interval: a second person; the interval closes
    life(lambda t: [], 9.8, 12)  # a replayed close of the same interval after another restart
    counts = [json.loads(m.payload) for m in outbox.peek(100) if "/counts/" in m.topic]
    assert [(c["count"], c["complete"], c["interval_start"]) for c in counts] == [
        (2, True, "2001-09-09T01:46:40.000Z")
    ]
    assert all(m.retain and m.qos == 1 for m in outbox.peek(100))
    outbox.close()
    store.close()


# --- the real model on the walkway clips ----------------------------------------------


def hand_counts() -> dict[tuple[str, int], tuple[int, int, int]]:
    rows: dict[tuple[str, int], tuple[int, int, int]] = {}
    text = (FIXTURES / "README.md").read_text(encoding="utf-8")
    section = text.split("### Hand counts for the `count` rule", 1)[1]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("walkway-"):
            start = int(cells[1].split("-")[0])
            rows[(cells[0], start)] = (int(cells[2]), int(cells[3]), int(cells[4]))
    return rows


def replay_counts(clip: str, out: Path, config: Path, *extra: str) -> list[dict[str, Any]]:
    cmd = [
        sys.executable, "-m", "edge_agent", "replay", str(FIXTURES / f"{clip}.mp4"),
        "--config", str(config), "--counts", str(out), "--quiet", *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("clip", ["walkway-a", "walkway-b"])
def test_walkway_counts_match_the_hand_count(clip: str, tmp_path: Path, model_ready: Path) -> None:
    truth = {k[1]: v for k, v in hand_counts().items() if k[0] == clip}
    assert sorted(truth) == [0, 10, 20, 30]
    reports = replay_counts(clip, tmp_path / "counts.jsonl", FIXTURES / "walkway-count.yaml")
    for r in reports:
        assert validate("count", r) == [], r
    got: dict[int, list[int]] = {}
    for r in reports:
        start = int(r["interval_start"][17:19])  # replay starts at 12:00:00: seconds = media time
        got.setdefault(start, [0, 0, 0])
        if r["rule"] == "lawn-count":
            got[start][0] = r["count"]
        else:
            got[start][1:] = [r["directions"]["in"], r["directions"]["out"]]
    assert sorted(got) == sorted(truth)
    for start, want in truth.items():
        assert all(abs(g - w) <= 1 for g, w in zip(got[start], want, strict=True)), (start, got[start], want)
    assert [r["complete"] for r in reports][-2:] == [False, False]  # the clip ends mid-interval


def test_walkway_counts_arrive_retained_through_mosquitto(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    model_ready: Path,
) -> None:
    cfg = yaml.safe_load((FIXTURES / "walkway-count.yaml").read_text())
    cfg["mqtt"] = {"url": mosquitto.url}
    cfg["outbox"] = {"path": str(tmp_path / "outbox.sqlite3")}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    produced = replay_counts("walkway-b", tmp_path / "counts.jsonl", config, "--publish")
    topic = TOPICS.counts("walkway", "mid-count")
    # a subscriber that comes later still gets the last value (retained)
    every_rule = topic.rsplit("/", 1)[0] + "/+"  # a filter, not a topic: Topics builds only topics
    with Subscriber(mosquitto.port, [every_rule]) as sub:
        sub.start()
        msgs = sub.wait_for(
            lambda m: {x.topic for x in m} >= {topic, TOPICS.counts("walkway", "lawn-count")}, 10
        )
    last = {m.topic: m.json() for m in msgs}
    for payload in last.values():
        assert validate("count", payload) == []
    want = [p for p in produced if p["rule"] == "mid-count"][-1]
    assert last[topic] == want
    assert want["directions"] == {"in": 2, "out": 4}


def test_the_town_console_stores_a_count_message() -> None:
    from edge_agent.console.records import CountRecord, parse_message

    (report, *_) = run(camera(), lambda t: [person(walk(t, 0, 3, 390, 100))], 12)
    payload = report.to_json("campus", "edge-fixture").encode()
    record = parse_message("eagleeye", TOPICS.counts("cam", "visits"), payload)
    assert isinstance(record, CountRecord)
    assert (record.site, record.device, record.camera, record.rule) == (
        "campus",
        "edge-fixture",
        "cam",
        "visits",
    )
    assert json.loads(record.payload)["count"] == 1
