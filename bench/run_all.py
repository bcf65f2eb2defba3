"""`make bench`: run every benchmark and write bench/REPORT.md (machine, versions, date)."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SECTIONS = [
    "bench_detector",
    "bench_replay",
    "bench_scenarios",
    "bench_mqtt",
    "bench_cameras",
    "bench_quantize",
]


def header() -> str:
    import cv2
    import numpy
    import onnxruntime

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "\n".join(
        [
            "# Benchmark report",
            "",
            f"Made by `make bench` on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
            "",
            "| | |",
            "|---|---|",
            f"| machine | {platform.machine()}, {os.cpu_count()} cores, {cpu} |",
            f"| system | {platform.platform()} |",
            f"| Python | {platform.python_version()} |",
            f"| onnxruntime | {onnxruntime.__version__} |",
            f"| OpenCV | {cv2.__version__} |",
            f"| NumPy | {numpy.__version__} |",
            "",
            "The machine is shared and noisy: compare ratios measured in one run, not absolute times"
            " across reports.",
            "",
        ]
    )


def main() -> int:
    parts = [header()]
    for name in SECTIONS:
        if not (HERE / f"{name}.py").exists():
            continue
        t0 = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(name)
        parts.append(module.run())
        print(f"bench: {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    report = HERE / "REPORT.md"
    report.write_text("\n".join(parts))
    print(f"wrote {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
