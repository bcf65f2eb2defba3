"""`edge-agent snapshot`: one current camera frame with zones, lines and masks drawn."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import yaml

from tests.conftest import FIXTURES, REPO
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory  # noqa: F401

PASSWORD = "snap-Pa55"


def snapshot(config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "edge_agent", "snapshot", "--config", str(config), "--camera", "walkway"]
    return subprocess.run(
        [*cmd, "-o", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def config_with_url(tmp: Path, url: str) -> Path:
    cfg = yaml.safe_load((FIXTURES / "walkway.yaml").read_text())
    cfg["cameras"][0]["url"] = url
    cfg["cameras"][0]["open_timeout_s"] = 3
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_snapshot_of_a_live_camera_draws_zones_lines_and_masks(
    tmp_path: Path,
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
) -> None:
    cam = rtsp_server_factory(user="admin", password=PASSWORD)
    out = tmp_path / "snap.jpg"
    proc = snapshot(config_with_url(tmp_path, cam.url_with()), out)
    assert proc.returncode == 0, proc.stderr
    assert "768x576 with 2 zones, 1 lines, 1 masks" in proc.stdout
    img = cv2.imread(str(out))
    assert img.shape == (576, 768, 3)
    # the line `mid` runs down x = 0.5 from y = 0.25 to 0.75, drawn in its colour (BGR 255,160,0)
    column = img[200:400, 380:390].reshape(-1, 3).astype(int)
    assert (np.abs(column - [255, 160, 0]).sum(axis=1) < 120).any()
    # the lawn zone's bottom edge lies on the frame border: its colour (BGR 0,200,255) along the bottom row
    bottom = img[-3:, 100:700].astype(int)
    near = np.abs(bottom - [0, 200, 255]).sum(axis=2) < 120
    assert near.any(axis=0).mean() > 0.8
    assert PASSWORD not in proc.stdout + proc.stderr


def test_an_unreachable_camera_is_one_clear_line(tmp_path: Path) -> None:
    proc = snapshot(config_with_url(tmp_path, f"rtsp://admin:{PASSWORD}@127.0.0.1:9/cam"), tmp_path / "s.jpg")
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert "rtsp://admin:***@127.0.0.1:9/cam" in line and "cannot open" in line
    assert PASSWORD not in proc.stderr
