"""`edge-agent replay --publish`: a real replay through the outbox to a real Mosquitto."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from edge_agent.contract.schemas import validate
from tests.broker import Mosquitto, Subscriber, dedup, mosquitto  # noqa: F401
from tests.conftest import FIXTURES, REPO, clip_prefix


def config_for(tmp: Path, broker: Mosquitto) -> Path:
    cfg = yaml.safe_load((FIXTURES / "walkway.yaml").read_text())
    cfg["mqtt"] = {"url": broker.url}
    cfg["outbox"] = {"path": str(tmp / "outbox.sqlite3")}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def replay(config: Path, clip: str, events: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "edge_agent", "replay", str(FIXTURES / clip), "--config", str(config),
        "--publish", "--events", str(events), "--quiet", *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_event_and_snapshot_of_a_replay_arrives_in_order(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    model_ready: Path,
) -> None:
    with Subscriber(mosquitto.port, ["eagleeye/#"]) as sub:
        sub.start()
        proc = replay(config_for(tmp_path, mosquitto), "walkway-b.mp4", tmp_path / "events.jsonl")
        assert proc.returncode == 0, proc.stderr
        assert "every event and snapshot acknowledged" in proc.stderr
        produced = lines(tmp_path / "events.jsonl")
        sub.wait_for(lambda msgs: len(dedup([json.loads(m.payload) for m in msgs if "/events/" in m.topic]))
                     >= len(produced), 30)  # fmt: skip
        received = dedup(sub.events())
        assert received == produced  # same events, same order (one camera)
        for ev in received:
            assert not validate("event", ev), ev
        snapshots = {m.topic.rsplit("/", 1)[1]: m.payload for m in sub.snapshot() if "/snapshots/" in m.topic}
        starts = [e for e in produced if e["phase"] == "start"]
        assert set(snapshots) == {e["event_id"] for e in starts}
        for e in starts:
            assert hashlib.sha256(snapshots[e["event_id"]]).hexdigest() == e["snapshot"]["sha256"]
            assert snapshots[e["event_id"]][:2] == b"\xff\xd8"  # a JPEG


def test_an_unreachable_broker_keeps_the_backlog_for_the_next_run(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    model_ready: Path,
) -> None:
    config = config_for(tmp_path, mosquitto)
    # the first 15 s of each clip hold three incidents each: a backlog, then a new run behind it
    clip_a, clip_b = clip_prefix(tmp_path, "walkway-a.mp4", 15), clip_prefix(tmp_path, "walkway-b.mp4", 15)
    mosquitto.kill()
    first = replay(config, str(clip_a), tmp_path / "a.jsonl", "--drain-timeout", "2")
    assert first.returncode == 1
    assert "wait in the outbox" in first.stderr and "next run delivers them" in first.stderr
    assert "Traceback" not in first.stderr

    mosquitto.start()
    with Subscriber(mosquitto.port, ["eagleeye/#"]) as sub:
        sub.start()
        second = replay(config, str(clip_b), tmp_path / "b.jsonl")
        assert second.returncode == 0, second.stderr
        backlog, new = lines(tmp_path / "a.jsonl"), lines(tmp_path / "b.jsonl")
        assert len(backlog) >= 3 and len(new) >= 3
        expected = backlog + new
        sub.wait_for(lambda msgs: len(dedup([json.loads(m.payload) for m in msgs if "/events/" in m.topic]))
                     >= len(expected), 30)  # fmt: skip
        assert dedup(sub.events()) == expected  # the backlog first, in order, then the new run
