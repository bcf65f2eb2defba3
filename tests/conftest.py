"""Shared paths. The repo is cloned beside `shared/` (raw footage and the model cache)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = REPO / "fixtures"


def clip_prefix(tmp: Path, clip: str, seconds: int) -> Path:
    """The first `seconds` of a fixture clip with its own packets (a stream copy; the walkway
    clips have a key frame every 5 s, so a multiple of 5 ends on a whole group of pictures)."""
    out = tmp / f"{Path(clip).stem}-{seconds}s.mp4"
    cmd = ["ffmpeg", "-v", "error", "-i", str(FIXTURES / clip), "-t", str(seconds), "-c", "copy", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="session")
def model_ready() -> Path:
    """The default model in the project's model directory (fetched from the cache if needed)."""
    from edge_agent.tools.models import fetch_model

    return fetch_model("yolox-nano")
