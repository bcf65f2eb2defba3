"""`edge-agent snapshot`: one current frame of a camera with its zones, lines and masks drawn."""

from __future__ import annotations

from pathlib import Path

import cv2

from edge_agent.core.config import CameraConfig
from edge_agent.pipeline.evidence import draw_overlays
from edge_agent.sources.capture import grab_frame


def take_snapshot(cam: CameraConfig, output: str | Path) -> tuple[int, int]:
    img = grab_frame(cam.url, cam.open_timeout_s)
    draw_overlays(img, cam)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), img):
        raise OSError(f"{out}: cannot write the picture (unknown extension or unwritable folder)")
    return int(img.shape[1]), int(img.shape[0])
