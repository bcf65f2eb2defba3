"""Detector benchmark: ms per frame on real footage, and the cost of everything around the model.

`detect()` (letterbox, NCHW float32 tensor, inference, decode, NMS, letterbox
undo) is compared with a bare `session.run` on the same tensor. Both are timed
on every frame, interleaved (and in alternating order), so that a noisy
neighbour or CPU frequency change hits both sides alike.

Run from the repository root: `python -m bench.bench_detector` (prints a Markdown section).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edge_agent.core.config import ModelConfig
from edge_agent.pipeline.detect.models import resolve_model
from edge_agent.pipeline.detect.onnx import OnnxDetector
from edge_agent.tools.models import fetch_model

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "fixtures" / "vtest.avi"
TARGET_RATIO = 1.15
WARMUP_FRAMES = 10


def _read_frames(path: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RuntimeError(f"cannot open {path}")
    frames = []
    try:
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if len(frames) < count:
        raise RuntimeError(f"{path} has only {len(frames)} frames, {count} wanted")
    return frames


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def run(frames: int = 120, threads: int = 1) -> str:
    """Benchmark YOLOX-Nano on `frames` frames of vtest.avi; returns a Markdown section."""
    model_path = fetch_model("yolox-nano")
    cfg = ModelConfig(name="yolox-nano", threads=threads)
    detector = OnnxDetector(resolve_model(cfg, model_dir=model_path.parent), cfg)
    images = _read_frames(VIDEO, frames + WARMUP_FRAMES)
    session, input_name = detector.session, detector.input_name

    detect_ms: list[float] = []
    bare_ms: list[float] = []
    pre_ms: list[float] = []
    infer_ms: list[float] = []
    post_ms: list[float] = []
    detections = 0
    for i, image in enumerate(images):
        tensor, _ = detector.preprocess(image)
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            t0 = time.perf_counter()
            if which == 0:
                dets = detector.detect(image)
            else:
                session.run(None, {input_name: tensor})
            elapsed = (time.perf_counter() - t0) * 1e3
            if i < WARMUP_FRAMES:
                continue
            if which == 0:
                detect_ms.append(elapsed)
                pre_ms.append(detector.last_timing.preprocess_ms)
                infer_ms.append(detector.last_timing.inference_ms)
                post_ms.append(detector.last_timing.postprocess_ms)
                detections += len(dets)
            else:
                bare_ms.append(elapsed)

    # Paired per frame: a load spike from a neighbour lands on both timings of a frame.
    ratio = statistics.median(d / b for d, b in zip(detect_ms, bare_ms, strict=True))
    ratio_of_medians = statistics.median(detect_ms) / statistics.median(bare_ms)
    overhead_ms = statistics.median(d - b for d, b in zip(detect_ms, bare_ms, strict=True))
    verdict = "pass" if ratio <= TARGET_RATIO else "FAIL"
    h, w = images[0].shape[:2]
    rows = [
        ("`detect()` whole", detect_ms),
        ("  preprocess (letterbox, NCHW float32)", pre_ms),
        ("  inference (`session.run` inside `detect`)", infer_ms),
        ("  decode + NMS + letterbox undo", post_ms),
        ("bare `session.run`, same tensor", bare_ms),
    ]
    lines = [
        "## Detector",
        "",
        f"YOLOX-Nano 416x416 on {frames} frames of `vtest.avi` ({w}x{h}), "
        f"after {WARMUP_FRAMES} warm-up frames; "
        f"`min_score` {cfg.min_score}, `nms_iou` {cfg.nms_iou}, {threads} intra-op threads, "
        f"{detections / frames:.1f} detections per frame.",
        "",
        "| stage | median ms | p90 ms |",
        "|---|---:|---:|",
        *(f"| {name} | {statistics.median(v):.2f} | {_p(v, 90):.2f} |" for name, v in rows),
        "",
        f"Overhead: `detect()` / bare `session.run`, median of the per-frame ratios = **{ratio:.3f}** "
        f"(target <= {TARGET_RATIO}: **{verdict}**); ratio of the medians {ratio_of_medians:.3f}; "
        f"median extra time per frame {overhead_ms:.2f} ms. Both are timed on every frame, interleaved "
        "in alternating order.",
        "",
        f"- providers: {', '.join(detector.providers)}",
        f"- onnxruntime {ort.__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}",
        f"- machine: {platform.machine()}, {_cpu_count()} CPUs, {platform.processor() or platform.system()}",
        "",
    ]
    return "\n".join(lines)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    print(run())
