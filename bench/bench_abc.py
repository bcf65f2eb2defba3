"""A/B/C: `edge-agent replay` vs a Roboflow supervision peer vs decode + bare `session.run`.

The same clip (walkway-a, 400 frames at 10 fps, every 2nd frame analysed), the same
YOLOX-Nano file and the same onnxruntime settings (1 intra-op thread, spinning off) for:

- A: `run_replay` with the rules of `fixtures/walkway.yaml` plus a left_object rule on the
  path (A-: without it);
- B: `bench/peer_supervision.py`, what a user would write with supervision and its
  ByteTrack (zones and line of the same config), run from a scratch venv that this
  benchmark makes with uv from PyPI (`build/bench-peer`; supervision is never a
  dependency of edge-agent);
- C: the limit: decode every frame, convert every 2nd to a picture and run a bare
  `session.run` on it (bench_replay.py's limit).

Each runs in its own process, timed inside it (start-up and model load excluded), in
interleaved rounds with the order rotated; ratios are taken within a round.

    python bench/bench_abc.py                 # EDGE_AGENT_BENCH_ABC_ROUNDS=4
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CLIP = REPO / "fixtures" / "walkway-a.mp4"
CONFIG = REPO / "fixtures" / "walkway.yaml"
PEER_VENV = REPO / "build" / "bench-peer"
# 0.30.x is the last series with sv.ByteTrack (0.31 moved trackers to a package of their own)
PEER_PACKAGES = ["supervision==0.30.9"]
ROUNDS = int(os.environ.get("EDGE_AGENT_BENCH_ABC_ROUNDS", "4"))
THREADS = 1
LEFT_OBJECT = {"id": "left-bag", "kind": "left_object", "zone": "path", "min_static_s": 20, "min_area": 0.002}


def peer_python() -> Path:
    """The scratch venv's Python, made on first use: supervision plus this venv's own
    onnxruntime, OpenCV and NumPy versions, so only the pipeline around them differs."""
    import cv2
    import numpy
    import onnxruntime

    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".bench-ready"
    pins = [
        *PEER_PACKAGES,
        f"onnxruntime=={onnxruntime.__version__}",
        f"numpy=={numpy.__version__}",
        f"opencv-python-headless=={_opencv_dist_version() or cv2.__version__}",
    ]
    if stamp.exists() and stamp.read_text() == "\n".join(pins):
        return python
    uv = Path(sys.executable).parent / "uv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([str(uv), "venv", "-q", "--allow-existing", str(PEER_VENV), "--python", sys.executable],
                   check=True, env=env)  # fmt: skip
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), *pins], check=True, env=env)
    stamp.write_text("\n".join(pins))
    return python


def _opencv_dist_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("opencv-python-headless", "opencv-python"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def write_config(tmp: Path, left_object: bool) -> Path:
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["model"]["threads"] = THREADS
    if left_object:
        cfg["cameras"][0]["rules"].append(LEFT_OBJECT)
    path = tmp / f"walkway-{'lo' if left_object else 'plain'}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# --- the measured sides, each in its own process ------------------------------------------


def side_replay(config: str) -> dict[str, Any]:
    from edge_agent.app.config import load_config
    from edge_agent.app.replay import run_replay
    from edge_agent.app.wiring import detector_of
    from edge_agent.delivery.jsonl import MemorySink

    cfg = load_config(config)
    detector = detector_of(cfg)
    c0, t0 = time.process_time(), time.perf_counter()
    result = run_replay(cfg, cfg.cameras[0].id, [str(CLIP)], detector, MemorySink())
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames, analysed = result.frames_read, result.frames_analysed
    return {"frames": frames, "analysed": analysed, "seconds": seconds, "cpu_s": cpu}


def side_limit(config: str) -> dict[str, Any]:
    import cv2

    from edge_agent.app.config import load_config
    from edge_agent.app.wiring import detector_of
    from edge_agent.pipeline.detect.onnx import OnnxDetector

    detector = detector_of(load_config(config))
    assert isinstance(detector, OnnxDetector)
    cap = cv2.VideoCapture(str(CLIP))
    _, first = cap.read()
    cap.release()
    tensor, _ = detector.preprocess(first)
    run, feeds = detector.session.run, {detector.input_name: tensor}
    cap = cv2.VideoCapture(str(CLIP))
    frames = analysed = 0
    c0, t0 = time.process_time(), time.perf_counter()
    while True:
        if not cap.grab():
            break
        frames += 1
        if (frames - 1) % 2 == 0:
            analysed += 1
            cap.retrieve()  # only the analysed frames become pictures, as in replay
            run(None, feeds)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    cap.release()
    return {"frames": frames, "analysed": analysed, "seconds": seconds, "cpu_s": cpu}


def measure(cmd: list[str]) -> dict[str, Any]:
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def run() -> str:
    peer = peer_python()
    load = [os.getloadavg()]
    me = [sys.executable, str(Path(__file__).resolve())]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lo, plain = write_config(tmp, True), write_config(tmp, False)
        model = str(REPO / "models" / "yolox_nano.onnx")
        sides = {
            "A": [*me, "replay", str(lo)],
            "A-": [*me, "replay", str(plain)],
            "B": [str(peer), str(REPO / "bench" / "peer_supervision.py"), model, str(CLIP), str(THREADS)],
            "C": [*me, "limit", str(plain)],
        }
        fps: dict[str, list[float]] = {k: [] for k in sides}
        cpu_ms: dict[str, list[float]] = {k: [] for k in sides}
        for r in range(ROUNDS):
            names = list(sides)
            names = names[r % len(names) :] + names[: r % len(names)]
            for name in names:
                res = measure(sides[name])
                fps[name].append(res["frames"] / res["seconds"])
                cpu_ms[name].append(1000.0 * res["cpu_s"] / res["analysed"])
                print(f"bench_abc: round {r + 1} {name}: {fps[name][-1]:.1f} frames/s", file=sys.stderr)
        load.append(os.getloadavg())
    return report(fps, cpu_ms, load)


def report(
    fps: dict[str, list[float]], cpu_ms: dict[str, list[float]], load: list[tuple[float, float, float]]
) -> str:
    def ratio(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(fps[a], fps[b], strict=True)]

    def cell(values: list[float], digits: int = 2) -> str:
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"

    a_c, a_b, am_b, b_c = ratio("A", "C"), ratio("A", "B"), ratio("A-", "B"), ratio("B", "C")
    labels = {
        "A": "A: `edge-agent replay`, walkway rules + left_object",
        "A-": "A-: `edge-agent replay`, walkway rules without left_object",
        "B": "B: supervision peer (sv.ByteTrack, 2 PolygonZones, LineZone)",
        "C": "C: limit: decode + bare `session.run`",
    }
    a_ok = statistics.median(a_c) >= 0.85 and statistics.median(a_b) >= 1.2
    return "\n".join(
        [
            "## A/B/C: replay vs a supervision peer vs the limit",
            "",
            f"`{CLIP.name}` (768x576, 400 frames, 10 fps), every 2nd frame analysed, YOLOX-Nano, 1 intra-op"
            f" thread, spinning off, for all; each side in its own process, timed inside it; {ROUNDS}"
            " interleaved rounds, order rotated; median (min–max) over the rounds. The peer runs from a"
            " scratch venv (supervision 0.30.9 from PyPI, the same onnxruntime/OpenCV/NumPy versions)."
            " Load average before and after: "
            + "; ".join(f"{a:.2f} {b:.2f} {c:.2f}" for a, b, c in load)
            + " (the box is shared with other jobs).",
            "",
            "| side | source frames/s | CPU ms per analysed frame |",
            "|---|---:|---:|",
            *(f"| {labels[k]} | {cell(v, 1)} | {cell(cpu_ms[k], 1)} |" for k, v in fps.items()),
            "",
            "| ratio (within a round) | median (min–max) | target |",
            "|---|---:|---:|",
            f"| A / C (replay vs limit) | {cell(a_c)} | ≥ 0.85 |",
            f"| A / B (replay vs supervision peer) | {cell(a_b)} | ≥ 1.2 |",
            f"| A- / B (without left_object) | {cell(am_b)} | |",
            f"| B / C (peer vs limit) | {cell(b_c)} | |",
            "",
            f"- Targets {'met' if a_ok else 'NOT met'} in this run.",
            "- Replay decodes, detects and runs the rules on three threads (app/replay.py), so it can"
            " pass the single-threaded limit in speed; the CPU column is the whole process's CPU time,"
            " all threads, per analysed frame.",
            "",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("replay", "limit"):
        side = side_replay if sys.argv[1] == "replay" else side_limit
        print(json.dumps(side(sys.argv[2])))
    else:
        print(run())
