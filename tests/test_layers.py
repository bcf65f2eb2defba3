"""The import rule of docs/architecture.md: imports point down the layers only.

tools → app → pipeline / delivery / sources → contract → core. The three middle layers do
not import each other either (they meet in app/wiring.py), contract imports only core, and
core imports nothing of the project beyond core. The town console is an application of its
own: it imports only contract and core, and nothing of the box imports it. The checker reads
each module's `ast`, so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "edge_agent"

# layer -> the layers it may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "contract": {"core", "contract"},
    "sources": {"core", "contract", "sources"},
    "pipeline": {"core", "contract", "pipeline"},
    "delivery": {"core", "contract", "delivery"},
    "app": {"core", "contract", "sources", "pipeline", "delivery", "app"},
    "tools": {"core", "contract", "sources", "pipeline", "delivery", "app", "tools"},
    "console": {"core", "contract", "console"},
}


def layer_of(module: str) -> str | None:
    """`edge_agent.pipeline.rules.vendor` -> `pipeline`; the package root has no layer."""
    parts = module.split(".")
    if parts[0] != "edge_agent" or len(parts) < 2 or parts[1] not in ALLOWED:
        return None
    return parts[1]


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, module) of every project import in `source`, relative imports resolved."""
    out: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names if a.name.startswith("edge_agent"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if not name.startswith("edge_agent"):
                continue
            if layer_of(name) is None:
                # `from edge_agent import tools` names a layer in the imported names
                out.extend((node.lineno, f"{name}.{a.name}") for a in node.names)
            else:
                out.append((node.lineno, name))
    return out


def violations(source: str, module: str) -> list[str]:
    """Every import in `source` (the text of `module`) that breaks the layer rule."""
    layer = layer_of(module)
    if layer is None:
        return []
    bad = []
    for line, target in imported_modules(source, module):
        target_layer = layer_of(target)
        if target_layer is not None and target_layer not in ALLOWED[layer]:
            bad.append(f"{module}:{line} imports {target} ({layer} may not import {target_layer})")
    return bad


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    top = {module_name(p) for p in MODULES if layer_of(module_name(p)) is None}
    # the package root: the version, and the one command line that picks an application
    assert top == {"edge_agent", "edge_agent.__main__", "edge_agent.main"}


def test_imports_point_down_only() -> None:
    bad = [v for p in MODULES for v in violations(p.read_text(encoding="utf-8"), module_name(p))]
    assert bad == []


def test_every_layer_says_what_it_may_import() -> None:
    for layer in ALLOWED:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"edge_agent/{layer}/__init__.py needs a docstring with its rule"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("edge_agent.core.types", "from edge_agent.pipeline.gate import FramePacer\n", 1),
        ("edge_agent.core.types", "import edge_agent.app.agent\n", 1),
        ("edge_agent.pipeline.camera", "def f():\n    from edge_agent.tools import cli\n", 1),
        ("edge_agent.pipeline.camera", "from edge_agent.delivery.outbox import Outbox\n", 1),
        ("edge_agent.delivery.mqtt", "from edge_agent.contract.topics import Topics\n", 0),
        ("edge_agent.contract.topics", "from edge_agent.delivery.outbox import Outbox\n", 1),
        ("edge_agent.tools.cli", "from edge_agent.console.app import run\n", 1),
        ("edge_agent.app.wiring", "import edge_agent.console\n", 1),
        ("edge_agent.console.web", "from edge_agent.pipeline.camera import CameraPipeline\n", 1),
        ("edge_agent.console.ingest", "from edge_agent.delivery.mqtt import MqttPublisher\n", 1),
        ("edge_agent.console.web", "from edge_agent.tools.local_http import base_url\n", 1),
        ("edge_agent.console.app", "from edge_agent.app.agent import Agent\n", 1),
        ("edge_agent.console.ingest", "from edge_agent.contract.mqtt_client import make_client\n", 0),
        ("edge_agent.delivery.mqtt", "from edge_agent import app\n", 1),
        ("edge_agent.sources.rtsp", "from ..app.agent import Agent\n", 1),
        ("edge_agent.pipeline.rules.vendor", "from ..detect import Detector\n", 0),
        ("edge_agent.app.agent", "from edge_agent.pipeline.camera import CameraPipeline\n", 0),
        ("edge_agent.app.agent", "from edge_agent.tools.cli import main\n", 1),
        ("edge_agent.tools.cli", "from edge_agent.app.agent import Agent\n", 0),
    ],
)
def test_checker_catches_an_upward_import(module: str, source: str, expected: int) -> None:
    assert len(violations(source, module)) == expected
