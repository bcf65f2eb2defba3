"""Replay throughput and CPU against the limit over the same clip, and a replay's peak RSS.

The limit: one thread decodes every frame, converts every 2nd to a picture and runs a
bare `session.run` on it (the frames `detect.fps: 5` takes from a 10 fps clip), one after
the other, in this process (before 2026-12-07 it converted every frame, as replay did);
replay does that and the rest (letterbox, decode of the model's output, motion gate,
tracker, rules, events) on three threads (app/replay.py). Both are timed in wall and CPU
time (`time.process_time`, every thread of this process), interleaved.

A third run per round replays with `model.threads: 2`, the fixtures' setting before
2026-12-07, so the report shows the replay's speed against what it was.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import yaml

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "fixtures" / "walkway-a.mp4"
CONFIG = REPO / "fixtures" / "walkway.yaml"
ROUNDS = int(os.environ.get("EDGE_AGENT_BENCH_REPLAY_ROUNDS", "5"))
FORMER_THREADS = 2  # the fixtures' `model.threads` before 2026-12-07
CPU_TARGET = 1.15  # replay CPU / the limit's


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


def config_with_threads(threads: int, tmp: Path) -> Path:
    """`CONFIG` with `model.threads` set to `threads`, written under `tmp`."""
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["model"]["threads"] = threads
    out = tmp / f"walkway-threads{threads}.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def limit_in_process(path: Path) -> tuple[int, float, float]:
    """Decode every frame, convert every 2nd to a picture and run a bare `session.run` on it:
    (frames, wall s, CPU s). Replay's source converts only the frames due at `detect.fps` too
    (sources/file.py), as the live limit (camera_limit.py) and reader do."""
    from edge_agent.app.config import load_config
    from edge_agent.app.wiring import detector_of
    from edge_agent.pipeline.detect.onnx import OnnxDetector

    detector = detector_of(load_config(CONFIG))
    assert isinstance(detector, OnnxDetector)
    cap = cv2.VideoCapture(str(path))
    _, first = cap.read()
    cap.release()
    tensor, _ = detector.preprocess(first)
    run, feeds = detector.session.run, {detector.input_name: tensor}
    cap = cv2.VideoCapture(str(path))
    n = 0
    c0, t0 = time.process_time(), time.perf_counter()
    while True:
        if not cap.grab():
            break
        if n % 2 == 0:
            cap.retrieve()  # only the frames it runs the model on become pictures, as in replay
            run(None, feeds)
        n += 1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    cap.release()
    return n, seconds, cpu


def replay_in_process(path: Path, config: Path = CONFIG) -> tuple[int, int, float, float]:
    from edge_agent.app.config import load_config
    from edge_agent.app.replay import run_replay
    from edge_agent.app.wiring import detector_of
    from edge_agent.delivery.jsonl import MemorySink

    cfg = load_config(config)
    detector = detector_of(cfg)
    c0, t0 = time.process_time(), time.perf_counter()
    result = run_replay(cfg, cfg.cameras[0].id, [str(path)], detector, MemorySink())
    return result.frames_read, result.frames_analysed, time.perf_counter() - t0, time.process_time() - c0


def replay_peak_rss_mb(path: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "edge_agent", "replay", str(path), "--config", str(CONFIG), "--quiet",
               "--events", f"{tmp}/e.jsonl", "--evidence", f"{tmp}/ev"]  # fmt: skip
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def run() -> str:
    decode_only(CLIP)  # warm the file cache
    runs = []
    former: list[tuple[float, float]] = []  # per round: replay speed / the former setting's, CPU ratio
    with tempfile.TemporaryDirectory() as tmp:
        former_config = config_with_threads(FORMER_THREADS, Path(tmp))
        for r in range(ROUNDS):
            n_dec, t_dec = decode_only(CLIP)
            if r % 2:  # alternate which goes first
                n_read, n_an, t_rep, c_rep = replay_in_process(CLIP)
                n_lim, t_lim, c_lim = limit_in_process(CLIP)
                _, _, t_old, c_old = replay_in_process(CLIP, former_config)
            else:
                _, _, t_old, c_old = replay_in_process(CLIP, former_config)
                n_lim, t_lim, c_lim = limit_in_process(CLIP)
                n_read, n_an, t_rep, c_rep = replay_in_process(CLIP)
            runs.append(
                (n_dec / t_dec, n_read / t_rep, n_an / t_rep, n_lim / t_lim, c_rep / c_lim, t_lim / t_rep)
            )
            former.append((t_old / t_rep, c_rep / c_old))
    runs.sort(key=lambda r: r[1])
    dec_fps, rep_fps, an_fps, lim_fps, _, _ = runs[len(runs) // 2]
    cpu_ratios = sorted(r[4] for r in runs)
    speed_ratios = sorted(r[5] for r in runs)
    cpu_ratio, speed_ratio = statistics.median(cpu_ratios), statistics.median(speed_ratios)
    vs_former = sorted(f[0] for f in former)
    cpu_vs_former = sorted(f[1] for f in former)
    threads = yaml.safe_load(CONFIG.read_text())["model"].get("threads", 1)
    rss = replay_peak_rss_mb(CLIP)
    return "\n".join(
        [
            "## Replay",
            "",
            f"Clip `{CLIP.name}` (768x576, 10 fps, 400 frames), `detect.fps: 5`,",
            f"rules of `fixtures/walkway.yaml` (`model.threads: {threads}`, limit and replay alike);"
            f" {ROUNDS} interleaved rounds, the run of median replay speed"
            " for the speeds; ratios are per round, median (min–max).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| decode-only loop | {dec_fps:.0f} frames/s |",
            "| limit: decode every frame, convert + bare `session.run` on every 2nd, one thread |"
            f" {lim_fps:.0f} frames/s |",
            "| replay (decode + detect every 2nd frame + track + rules + events) | "
            f"{rep_fps:.0f} source frames/s "
            f"({an_fps:.0f} analysed frames/s) |",
            f"| replay speed / decode-only speed | {rep_fps / dec_fps:.2f} |",
            f"| replay speed / the limit's | {speed_ratio:.2f}"
            f" ({speed_ratios[0]:.2f}–{speed_ratios[-1]:.2f}) |",
            f"| replay CPU / the limit's | {cpu_ratio:.2f} ({cpu_ratios[0]:.2f}–{cpu_ratios[-1]:.2f}),"
            f" target ≤ {CPU_TARGET:g}: {'met' if cpu_ratio <= CPU_TARGET else '**not met**'} |",
            f"| replay speed vs real time | {rep_fps / 10.0:.1f}x |",
            f"| replay speed / the same replay at `model.threads: {FORMER_THREADS}` (before 2026-12-07) |"
            f" {statistics.median(vs_former):.2f} ({vs_former[0]:.2f}–{vs_former[-1]:.2f}) |",
            f"| replay CPU / the same replay's at `model.threads: {FORMER_THREADS}` |"
            f" {statistics.median(cpu_vs_former):.2f} ({cpu_vs_former[0]:.2f}–{cpu_vs_former[-1]:.2f}) |",
            f"| peak RSS of `edge-agent replay` (with evidence) | {rss:.0f} MB |",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
