"""Replay throughput against a decode-only loop over the same clip, and a replay's peak RSS."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "fixtures" / "walkway-a.mp4"
CONFIG = REPO / "fixtures" / "walkway.yaml"


def decode_only(path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n, time.perf_counter() - t0


def replay_in_process(path: Path) -> tuple[int, int, float]:
    from edge_agent.app.config import load_config
    from edge_agent.app.replay import run_replay
    from edge_agent.app.wiring import detector_of
    from edge_agent.delivery.jsonl import MemorySink

    cfg = load_config(CONFIG)
    detector = detector_of(cfg)
    t0 = time.perf_counter()
    result = run_replay(cfg, cfg.cameras[0].id, [str(path)], detector, MemorySink())
    return result.frames_read, result.frames_analysed, time.perf_counter() - t0


def replay_peak_rss_mb(path: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "edge_agent", "replay", str(path), "--config", str(CONFIG), "--quiet",
               "--events", f"{tmp}/e.jsonl", "--evidence", f"{tmp}/ev"]  # fmt: skip
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def run() -> str:
    decode_only(CLIP)  # warm the file cache
    runs = []
    for _ in range(3):
        n_dec, t_dec = decode_only(CLIP)
        n_read, n_an, t_rep = replay_in_process(CLIP)
        runs.append((n_dec / t_dec, n_read / t_rep, n_an / t_rep))
    runs.sort(key=lambda r: r[1])
    dec_fps, rep_fps, an_fps = runs[len(runs) // 2]
    rss = replay_peak_rss_mb(CLIP)
    return "\n".join(
        [
            "## Replay",
            "",
            f"Clip `{CLIP.name}` (768x576, 10 fps, 400 frames), `detect.fps: 5`,",
            "rules of `fixtures/walkway.yaml`; median of 3 interleaved runs.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| decode-only loop | {dec_fps:.0f} frames/s |",
            "| replay (decode + detect every 2nd frame + track + rules + events) | "
            f"{rep_fps:.0f} source frames/s "
            f"({an_fps:.0f} analysed frames/s) |",
            f"| replay speed / decode-only speed | {rep_fps / dec_fps:.2f} |",
            f"| replay speed vs real time | {rep_fps / 10.0:.1f}x |",
            f"| peak RSS of `edge-agent replay` (with evidence) | {rss:.0f} MB |",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
