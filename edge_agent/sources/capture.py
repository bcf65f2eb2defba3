"""The one door to OpenCV's capture: FFmpeg options, timeouts, the open-failure reason.

The camera reader (`rtsp.py`), `edge-agent snapshot`, the zones page (which grabs frames
from HTTP threads) and `doctor` all open cameras here, so they use the same transport and
timeouts and never write the process-wide options variable at the same time.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.config import redact
from edge_agent.core.urls import ffmpeg_url
from edge_agent.sources import SourceError
from edge_agent.sources.probe import probe_rtsp

CAPTURE_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# TCP interleaving survives lossy Wi-Fi links where UDP loses whole frames; a small probe
# makes the first frame arrive in a fraction of a second instead of after seconds of analysis.
DEFAULT_CAPTURE_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32768"}

DECODE_THREADS = 1

_env_lock = threading.Lock()


def merge_capture_options(existing: str | None) -> str:
    """FFmpeg capture options as OpenCV reads them (`key;value|key;value`).

    Options already set are kept, missing defaults are added, and the RTSP
    transport is always TCP.
    """
    options: dict[str, str] = {}
    for item in (existing or "").split("|"):
        key, sep, value = item.partition(";")
        if key.strip() and sep:
            options[key.strip()] = value.strip()
    for key, value in DEFAULT_CAPTURE_OPTIONS.items():
        options.setdefault(key, value)
    options["rtsp_transport"] = "tcp"
    return "|".join(f"{k};{v}" for k, v in options.items())


def _ensure_capture_options() -> None:
    # OpenCV reads the variable at each open, and it is process-wide: set it under a lock.
    with _env_lock:
        merged = merge_capture_options(os.environ.get(CAPTURE_OPTIONS_ENV))
        if os.environ.get(CAPTURE_OPTIONS_ENV) != merged:
            os.environ[CAPTURE_OPTIONS_ENV] = merged


def file_path(url: str) -> Path | None:
    """The local path when `url` names a file (a path or file://), else None."""
    if url.startswith("file://"):
        return Path(unquote(url.removeprefix("file://")))
    if "://" in url:
        return None
    return Path(url)


def open_capture(url: str, open_timeout_s: float, read_timeout_s: float) -> cv2.VideoCapture:
    """Open a camera stream or a video file; raises SourceError (one line, no password) if it fails."""
    path = file_path(url)
    if path is not None:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            missing = "" if path.is_file() else " (no such file)"
            raise SourceError(f"{path}: cannot open the video file{missing}")
        return cap
    _ensure_capture_options()
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_s * 1000),
        # One decoding thread per camera: a sub-stream decodes in a few ms on one core, and
        # FFmpeg's default (a thread per core plus one, each holding frames) cost ~2 MB and
        # ~18 threads per camera for nothing when ten cameras share two cores.
        cv2.CAP_PROP_N_THREADS,
        DECODE_THREADS,
    ]
    t0 = time.monotonic()
    # Credentials decoded and encoded again (core/urls.py): `p%23ss` and a raw `@` both work.
    cap = cv2.VideoCapture(ffmpeg_url(url), cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        if time.monotonic() - t0 >= 0.9 * open_timeout_s:
            why = f"no answer within open_timeout_s {open_timeout_s:g} s"
        else:
            why = probe_rtsp(url, min(2.0, open_timeout_s))
        raise SourceError(f"cannot open {redact(url)}: {why}")
    return cap


def grab_frame(url: str, timeout_s: float = 10.0) -> npt.NDArray[np.uint8]:
    """One frame from a camera URL or a video file."""
    cap = open_capture(url, timeout_s, timeout_s)
    try:
        ok, img = cap.read()
        if not ok or img is None:
            raise SourceError(f"{redact(url)}: opened, but no frame arrived")
        return np.asarray(img, dtype=np.uint8)
    finally:
        cap.release()
