"""Fuzz: seeded mutations of a valid config through `validate`, then a short `replay` of each that passes.

The promise under test: no config makes `validate` (or doctor's config check) raise, and
nothing `validate` accepts fails when `replay` starts (topics built, time zone loaded, the
pipeline built and a few frames through it). The detector is scripted so that a few hundred
replays fit in well under a minute; the clip is cut from a committed fixture at test time.
"""

from __future__ import annotations

import copy
import math
import random
import traceback
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

from edge_agent.app.checks import check_text
from edge_agent.app.replay import run_replay
from edge_agent.app.wiring import topics_of
from edge_agent.core.types import Detections
from edge_agent.delivery.jsonl import MemorySink
from edge_agent.pipeline.detect.models import COCO80_LABELS
from edge_agent.pipeline.detect.scripted import ScriptedDetector, boxes
from edge_agent.tools.doctor import check_config_file
from tests.conftest import REPO

SEED = 20261202
CASES = 300

WEIRD_VALUES: list[Any] = [
    0, -1, 1e308, -1e308, 10**40, math.inf, -math.inf, math.nan, "", "x" * 5000, "日本語🎥\u200b", None,
    True, [], {}, [1, 2], {"a": 1}, "12:00", "00:00", [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]],
]  # fmt: skip
BAD_IDS = ["a+b", "#", "a/b", " ", "", "é", "x" * 100, ".x", "-x", "a b", "a\x00b", "+/#"]
BAD_URLS = [
    "rtsp://h:abc/x", "rtsp://admin:S3cr#t@h/x", "rtsp://admin:a/b@h/x", "rtsp://", "mqtt://h:abc",
    "file:///nope/none.mp4", "rtsp://[::1", "://", "rtsp://a b/", "rtsp://h:0/", "rtsp://h:99999/",
    "mqtt://", "mqtts://u:p@h:8883/x", "nope.mp4", "http://h/x?y=1#f",
]  # fmt: skip
BAD_ZONES = ["UTC+8", "", "Asia/Shang hai", "../../etc/passwd", "Etc/GMT-8", "utc", "Europe/Berlin"]


def base_config(tmp: Path, clip: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "fixtures" / "walkway.yaml").read_text())
    data["site"]["timezone"] = "Asia/Shanghai"
    data["mqtt"] = {"url": "mqtt://127.0.0.1:1", "username": "edge", "password": "20261126"}
    data["outbox"] = {"path": str(tmp / "outbox.sqlite3"), "max_mb": 64}
    data["evidence"] = {"dir": str(tmp / "evidence")}
    cam = data["cameras"][0]
    cam["url"] = str(clip)
    cam["rules"][2]["schedule"] = {"from": "08:00", "to": "18:00", "days": ["mon", "tue"]}
    cam["rules"].append({"id": "left", "kind": "left_object", "zone": "lawn", "min_static_s": 5})
    return data


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


def mutate(data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths(data)[1:])
        parent, key = get(data, path[:-1]), path[-1]
        op = rng.randrange(8)
        if op == 0:
            parent[key] = rng.choice(WEIRD_VALUES)
        elif op == 1 and isinstance(parent, dict):
            del parent[key]
        elif op == 2 and isinstance(parent[key], str):
            pos = rng.randrange(len(parent[key]) + 1)
            parent[key] = (
                parent[key][:pos]
                + rng.choice(["é", "🎥", "\u202e", "/", "+", "#", " ", "%"])
                + parent[key][pos:]
            )
        elif op == 3:
            target = rng.choice([p for p in paths(data) if p and p[-1] == "id"])
            get(data, target[:-1])["id"] = rng.choice(BAD_IDS)
        elif op == 4:
            target = rng.choice([p for p in paths(data) if p and p[-1] == "url"])
            get(data, target[:-1])["url"] = rng.choice(BAD_URLS)
        elif op == 5 and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            parent[key] = rng.choice([parent[key] * 1e300, -parent[key], parent[key] + 0.5, 2**63, 1e-300])
        elif op == 6:
            data["site"] = data.get("site") if isinstance(data.get("site"), dict) else {}
            data["site"]["timezone"] = rng.choice(BAD_ZONES)
        elif op == 7 and isinstance(parent, dict):
            parent[rng.choice(["colour", "Id", "zone ", "<<"])] = rng.choice(WEIRD_VALUES)
    return data


def as_text(data: dict[str, Any], rng: random.Random) -> str:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    if rng.random() < 0.1:  # damage at the text level too: a stray character anywhere
        pos = rng.randrange(len(text))
        text = (
            text[:pos]
            + rng.choice([":", "{", "&a ", "*a", "\t", "- ", "'", "!!python/object:os.system "])
            + text[pos:]
        )
    return text


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight frames of the walkway fixture, cut at test time."""
    out = tmp_path_factory.mktemp("fuzz") / "short.avi"
    cap = cv2.VideoCapture(str(REPO / "fixtures" / "walkway-a.mp4"))
    writer = None
    for _ in range(8):
        ok, img = cap.read()
        assert ok
        if writer is None:
            h, w = img.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (w, h))
        writer.write(img)
    assert writer is not None
    writer.release()
    cap.release()
    return out


def person(_: int) -> Detections:
    return boxes([(100.0, 100.0, 160.0, 260.0, 0.9, 0)])


def test_mutated_configs_never_raise_and_what_validates_replays(
    tmp_path: Path, clip: Path, model_ready: Path
) -> None:
    rng = random.Random(SEED)
    base = base_config(tmp_path, clip)
    assert check_text(yaml.safe_dump(base), {}).problems == []
    failures: list[str] = []
    accepted = 0
    for case in range(CASES):
        text = as_text(mutate(base, rng), rng)
        where = f"case {case}:\n{text[:2000]}"
        try:
            checked = check_text(text, {}, f"case{case}.yaml")
            for p in checked.problems:
                assert "20261126" not in str(p), p  # the password is never echoed
                assert len(str(p)) < 600, p
            cfg_file = tmp_path / "case.yaml"
            cfg_file.write_text(text, encoding="utf-8")
            check_config_file(str(cfg_file))  # doctor's config check
        except Exception:
            failures.append(f"{where}\nvalidate raised:\n{traceback.format_exc()}")
            continue
        if checked.cfg is None:
            continue
        accepted += 1
        cfg = checked.cfg
        try:
            topics = topics_of(cfg)
            for cam in cfg.cameras:
                topics.camera_status(cam.id)
                for rule in cam.rules:
                    topics.event(cam.id, rule.id)
            detector = ScriptedDetector(COCO80_LABELS, person)
            run_replay(cfg, cfg.cameras[0].id, [str(clip)], detector, MemorySink(), start_wall_ts=1.8e9)
        except Exception:
            failures.append(f"{where}\nreplay raised:\n{traceback.format_exc()}")
    assert not failures, f"{len(failures)} failure(s); the first:\n{failures[0]}"
    # the mutations must leave enough valid configs to test replay on, and refuse most
    assert 20 <= accepted <= CASES - 50, accepted
