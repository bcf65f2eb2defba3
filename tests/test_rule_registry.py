"""A new rule kind is one module plus one registry line.

The toy kind below is that module, written in this file: its config model and its state
machine. The fixture adds the registry line (to `KINDS`, the list config loading and the
engine both read), and the kind then goes through config parsing, `validate`'s error paths
and the engine like any built-in one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pytest
from pydantic import Field

from edge_agent.app.config import parse_config
from edge_agent.core.config import CameraConfig, ConfigError, RuleConfigBase
from edge_agent.core.types import Detections, Frame
from edge_agent.pipeline.rules import registry
from edge_agent.pipeline.rules.base import Observation, RuleKindSpec, Scene, object_refs, select, zone_polygon
from edge_agent.pipeline.rules.engine import RuleEngine
from edge_agent.pipeline.rules.zones import ZoneMembership

# --- the toy kind: the one new file ------------------------------------------------------------


class PairRule(RuleConfigBase):
    """`pair`: at least two objects of `labels` in the zone at once."""

    kind: Literal["pair"]
    zone: str
    min_count: int = Field(2, ge=2)


class Pair:
    def __init__(self, rule: PairRule, polygon: list[tuple[float, float]], min_score: float) -> None:
        self.labels = rule.labels or ["person"]
        self.min_score = min_score
        self.min_count = rule.min_count
        self.zone = ZoneMembership(polygon, enter_frames=1)

    def update(self, scene: Scene) -> list[Observation]:
        idx = select(scene, self.labels, self.min_score)
        _, track_ids, members = self.zone.update_scene(scene, idx)
        if len(members) < self.min_count:
            return []
        inside = [int(i) for i, t in zip(idx, track_ids.tolist(), strict=True) if t in members]
        return [Observation("zone", min(members.values()), object_refs(scene, inside))]


def _build(rule: PairRule, cam: CameraConfig, min_score: float) -> Pair:
    return Pair(rule, zone_polygon(rule, cam), min_score)


KIND = RuleKindSpec("pair", PairRule, _build)

# --- the registry line -------------------------------------------------------------------------


@pytest.fixture
def pair_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(registry, "KINDS", [*registry.KINDS, KIND])
    yield


CONFIG = """
version: 1
site: {id: s}
device: {id: d}
cameras:
  - id: cam
    url: file:///dev/null
    zones: {box: {polygon: [[0.4, 0.4], [0.8, 0.4], [0.8, 0.8], [0.4, 0.8]]}}
    rules:
      - {id: two, kind: pair, zone: box, RULE_EXTRA}
"""
LABELS = ("person", "car")
W = H = 100
IMAGE = np.zeros((H, W, 3), np.uint8)


def scene(index: int, centres: list[float]) -> Scene:
    rows = np.array([[c - 5, 40, c + 5, 60] for c in centres], np.float32).reshape(-1, 4)
    n = len(centres)
    dets = Detections(rows, np.full(n, 0.9), np.zeros(n, np.int32), np.arange(1, n + 1))
    return Scene(Frame("cam", index, index / 5.0, 1000.0 + index / 5.0, IMAGE), dets, LABELS)


def test_a_kind_unknown_to_the_registry_is_a_config_problem() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(CONFIG.replace(", RULE_EXTRA", ""))
    assert "unknown rule kind 'pair'" in str(err.value)


def test_a_registered_toy_kind_parses_validates_and_runs(pair_registered: None) -> None:
    cfg = parse_config(CONFIG.replace("RULE_EXTRA", "min_count: 2"))
    rule = cfg.cameras[0].rules[0]
    assert isinstance(rule, PairRule) and rule.min_count == 2

    # its own keys are checked, with the path and the keys it accepts
    with pytest.raises(ConfigError) as err:
        parse_config(CONFIG.replace("RULE_EXTRA", "colour: red"))
    assert "cameras[0].rules[0].colour: unknown key 'colour'" in str(err.value)
    assert "min_count" in str(err.value)

    # the engine dispatches it and runs the lifecycle: one object, then two, then none
    engine = RuleEngine(cfg.cameras[0], 0.35)
    drafts = []
    for i, centres in enumerate([[60.0]] * 3 + [[50.0, 70.0]] * 3 + [[]] * 5):
        drafts += engine.step(scene(i, centres))
    assert [(d.rule, d.kind, d.phase, d.zone) for d in drafts] == [
        ("two", "pair", "start", "box"),
        ("two", "pair", "end", "box"),
    ]
    assert [o.track_id for o in drafts[0].objects] == [1, 2]
