"""fp32 vs int8 YOLOX-Nano: ms per frame and detection agreement on fixture frames.

The int8 model is made fresh (default calibration: walkway-a and the shared
photos) into a temporary directory, then both models run `detect()` on every
frame of the held-out set (every 4th frame of walkway-b), interleaved in
alternating order, so load from elsewhere on the machine hits both alike.

Run from the repository root: `python -m bench.bench_quantize` (prints a Markdown section).
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import cv2
import onnxruntime as ort

from edge_agent.tools.models import fetch_model
from edge_agent.tools.quantize import (
    DEFAULT_FRAMES,
    SHARED_IMAGES,
    compare_models,
    detectors_for,
    evaluation_frames,
    quantize_model,
    read_images,
)

MIN_FRAMES = 50


def run(threads: int = 2) -> str:
    """Quantize YOLOX-Nano and compare it with fp32; returns a Markdown section."""
    fetch_model("yolox-nano")
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        folder = Path(tmp)
        result = quantize_model(
            "yolox-nano", out_path=folder / "yolox-nano-int8.onnx", manifest_directory=folder, threads=threads
        )
        fp32, int8 = detectors_for(result, threads=threads)
        frames = evaluation_frames()
        if len(frames) < MIN_FRAMES:
            raise RuntimeError(f"only {len(frames)} evaluation frames, {MIN_FRAMES} wanted")
        video = compare_models(fp32, int8, frames)
        photos = read_images(SHARED_IMAGES) if SHARED_IMAGES.is_dir() else []
        on_photos = compare_models(fp32, int8, photos) if photos else None
        fp32_mb = result.fp32_path.stat().st_size / 1e6
        int8_mb = result.int8_path.stat().st_size / 1e6

    faster = "faster" if video.speedup >= 1 else "slower"
    lines = [
        "## fp32 vs int8",
        "",
        f"YOLOX-Nano 416x416, `detect()` per frame on {video.frames} frames of `walkway-b.mp4` "
        f"(every 4th frame; never used for calibration), both models on every frame, interleaved in "
        f"alternating order; int8: static QDQ, per-channel int8 weights, uint8 activations, "
        f"percentile calibration on {result.calibration_frames} frames (walkway-a and the shared "
        f"photos); `min_score` {fp32.min_score}, {threads} intra-op threads.",
        "",
        "| model | median ms per frame | file MB | detections |",
        "|---|---:|---:|---:|",
        f"| fp32 | {video.fp32_ms:.2f} | {fp32_mb:.2f} | {video.fp32_detections} |",
        f"| int8 | {video.int8_ms:.2f} | {int8_mb:.2f} | {video.int8_detections} |",
        "",
        f"Speed: fp32 ms / int8 ms = **{video.speedup:.2f}** (int8 is {faster} here).",
        "",
        f"Agreement: int8 finds **{video.agreement:.1%}** of the fp32 detections "
        f"({video.matched} of {video.fp32_detections}; same class, IoU >= {video.iou_threshold}, "
        "one-to-one).",
    ]
    if on_photos is not None:
        lines += [
            "",
            f"On the {on_photos.frames} varied COCO photos of `shared/fixtures/images` (also in the "
            f"calibration set) agreement is only {on_photos.agreement:.1%} "
            f"({on_photos.matched} of {on_photos.fp32_detections}): the int8 model is fit for scenes "
            "like its calibration footage, so calibrate on the camera's own frames and check "
            "the agreement before deploying it.",
        ]
    lines += [
        "",
        f"- providers: {', '.join(fp32.providers)}; onnxruntime {ort.__version__}, OpenCV {cv2.__version__}",
        f"- machine: {platform.machine()}, {_cpu_count()} CPUs, {_cpu_name()}, int8 dot-product "
        f"instructions (VNNI): {'yes' if _has_vnni() else 'no'}",
        f"- default calibration size {DEFAULT_FRAMES} frames; Python {platform.python_version()}",
        "",
    ]
    return "\n".join(lines)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.system()


def _has_vnni() -> bool:
    return any(flag in _cpuinfo() for flag in ("avx512_vnni", "avx_vnni", "asimddp"))


if __name__ == "__main__":
    print(run())
