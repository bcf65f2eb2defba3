"""`make bench`: run every benchmark and write bench/REPORT.md (machine, versions, date)."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SECTIONS = [
    "bench_detector",
    "bench_replay",
    "bench_scenarios",
    "bench_accuracy",
    "bench_mqtt",
    "bench_threads",
    "bench_abc",
    "bench_cameras",
    "bench_gate",
    "bench_quantize",
    "bench_console",
    "bench_reliability",
    "bench_receipts",
    "bench_clip_outage",
    "bench_recorder",
    "bench_recording",
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


FAILED: list[str] = []


def run_section(name: str) -> str:
    """One section's text; a section that raises is reported in its place and the run goes on
    (an hour of other sections is not thrown away), and `make bench` then exits 1."""
    t0 = time.perf_counter()
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    try:
        text = str(importlib.import_module(name).run())
    except Exception as err:
        traceback.print_exc()
        FAILED.append(name)
        why = f"`{type(err).__name__}: {err}`"
        return f"## {name}: failed\n\n{why} (the traceback is in make bench's output).\n"
    print(f"bench: {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return text


def replace_sections(report: str, new: list[str]) -> str:
    """The report with each `## Heading` section of `new` put in place of its namesake."""
    for section in new:
        heading = section.splitlines()[0]
        # at the start of a line only: `## X` must not match inside `### X`
        start = 0 if report.startswith(heading + "\n") else report.find("\n" + heading + "\n") + 1
        if start == 0 and not report.startswith(heading + "\n"):
            report = report.rstrip("\n") + "\n\n" + section
            continue
        end = report.find("\n## ", start + len(heading))
        report = report[:start] + section.rstrip("\n") + "\n" + (report[end:] if end >= 0 else "")
    return report


def main() -> int:
    """`run_all.py` runs every section; `run_all.py bench_cameras ...` re-runs those into the report."""
    only = sys.argv[1:]
    report = HERE / "REPORT.md"
    if only:
        unknown = [n for n in only if n not in SECTIONS]
        if unknown:
            print(f"unknown sections: {', '.join(unknown)} (known: {', '.join(SECTIONS)})", file=sys.stderr)
            return 2
        report.write_text(replace_sections(report.read_text(), [run_section(n) for n in only]))
    else:
        parts = [header()] + [run_section(n) for n in SECTIONS if (HERE / f"{n}.py").exists()]
        report.write_text("\n".join(parts))
    print(f"wrote {report}", file=sys.stderr)
    if FAILED:
        print(f"bench: failed: {', '.join(FAILED)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
