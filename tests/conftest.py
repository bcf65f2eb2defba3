"""Shared paths. The repo is cloned beside `shared/` (raw footage and the model cache)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = REPO / "fixtures"


@pytest.fixture(scope="session")
def model_ready() -> Path:
    """The default model in the project's model directory (fetched from the cache if needed)."""
    from edge_agent.tools.models import fetch_model

    return fetch_model("yolox-nano")
