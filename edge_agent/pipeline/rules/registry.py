"""The rule kinds this build knows: one list, read by config loading and by the engine.

Each entry is the `KIND` a kind's module exports (its config model and its state machine).
`app/config.py` closes the config's `rules` over these configs; `engine.py` dispatches each
rule to its kind's `build`. Adding a kind is one new module here plus one line below.
"""

from __future__ import annotations

from edge_agent.pipeline.rules import count, crowd, dwell, left_object, line_cross, presence, vendor
from edge_agent.pipeline.rules.base import RuleKindSpec

KINDS: list[RuleKindSpec] = [
    presence.KIND,
    dwell.KIND,
    crowd.KIND,
    line_cross.KIND,
    left_object.KIND,
    vendor.KIND,
    count.KIND,
]


def kind_named(name: str) -> RuleKindSpec | None:
    """The registered kind called `name` (the list is read at each call: tests may extend it)."""
    return next((k for k in KINDS if k.name == name), None)
