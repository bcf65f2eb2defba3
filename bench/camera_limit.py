"""The machine's own limit for live cameras: what one camera costs with nothing but its work.

One process reads the bench's RTSP stream through the agent's own capture
(`open_capture`: TCP, one decoding thread), decodes every frame the server sends,
converts to a picture only the frames due at `detect.fps` (the agent's reader does
the same), and runs a bare `session.run` of the agent's model (1 intra-op thread,
spinning off: the default model settings) on each of them, one input tensor for
all, at
the stream's own pace. Its CPU time over `seconds` of stream, as a share of one
core, is the bare cost of one camera; `cores x 100 % / that` cameras fill the
machine. No letterbox, no decode of the model's output, no tracker, rules, MQTT or
threads: every one of those is the agent's overhead over this limit.

    python bench/camera_limit.py rtsp://127.0.0.1:8554/cam 10 5   # url, seconds, fps
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def cores() -> int:
    """The cores this process may run on (what the agent's CPU % is a share of)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def measure(url: str, seconds: float, fps: float, warmup_s: float = 2.0) -> dict[str, Any]:
    from edge_agent.core.config import ModelConfig
    from edge_agent.core.pacing import FramePacer
    from edge_agent.pipeline.detect.onnx import OnnxDetector, load_detector
    from edge_agent.sources.capture import open_capture

    detector = load_detector(ModelConfig(name="yolox-nano"))
    assert isinstance(detector, OnnxDetector)
    cap = open_capture(url, 10.0, 10.0)
    ok, first = cap.read()
    if not ok:
        raise SystemExit(f"camera_limit: no frame from {url}")
    # One input tensor for every run, as in bench_abc.py's limit: the letterbox is the agent's.
    tensor, _ = detector.preprocess(first)
    run, out, feeds = detector.session.run, detector._output_names, {detector.input_name: tensor}
    pacer = FramePacer(fps)
    frames = analysed = 0
    started = time.monotonic()
    c0 = t0 = 0.0
    measuring = False
    while True:
        if not cap.grab():
            raise SystemExit(f"camera_limit: the stream from {url} ended")
        now = time.monotonic()
        if not measuring and now - started >= warmup_s:
            measuring, c0, t0, frames, analysed = True, time.process_time(), now, 0, 0
        if measuring and now - t0 >= seconds:
            break
        frames += 1
        if pacer.due(now - started):
            ok, _ = cap.retrieve()  # the BGR conversion, as the agent's reader does
            if ok:
                run(out, feeds)
                analysed += 1
    cpu_s, wall_s = time.process_time() - c0, time.monotonic() - t0
    cap.release()
    return {"frames": frames, "analysed": analysed, "seconds": wall_s, "cpu_s": cpu_s, "cores": cores()}


if __name__ == "__main__":
    url, secs, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(measure(url, secs, rate)))
