"""`edge-agent snapshot`: one current frame of a camera with its zones, lines and masks drawn."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.config import CameraConfig, redact
from edge_agent.pipeline.evidence import draw_overlays
from edge_agent.sources import SourceError


def grab_frame(url: str, timeout_s: float = 10.0) -> npt.NDArray[np.uint8]:
    """Read one frame from a camera URL or a video file."""
    target = url.removeprefix("file://")
    if target.startswith(("rtsp://", "rtsps://")):
        from edge_agent.sources.rtsp import merge_capture_options

        # the same transport as the agent (TCP): UDP through a village's cheap switches drops frames
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = merge_capture_options(
            os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
        )
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(timeout_s * 1000),
    ]
    cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    try:
        if not cap.isOpened():
            why = "cannot open the camera or file"
            if target.startswith(("rtsp://", "rtsps://")):
                from edge_agent.sources.probe import probe_rtsp

                why = f"cannot open the camera: {probe_rtsp(url, timeout_s)}"
            raise SourceError(f"{redact(url)}: {why}")
        ok, img = cap.read()
        if not ok or img is None:
            raise SourceError(f"{redact(url)}: opened, but no frame arrived")
        return np.asarray(img, dtype=np.uint8)
    finally:
        cap.release()


def take_snapshot(cam: CameraConfig, output: str | Path) -> tuple[int, int]:
    img = grab_frame(cam.url, cam.open_timeout_s)
    draw_overlays(img, cam)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), img):
        raise OSError(f"{out}: cannot write the picture (unknown extension or unwritable folder)")
    return int(img.shape[1]), int(img.shape[0])
