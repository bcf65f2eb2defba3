"""Recording's cost inside the whole agent: 10 live cameras with `evidence.clip.record` off and on.

The same set-up as `bench_cameras.py` (its `measure`: `edge-agent run` as a subprocess, the
walkway clip served by the GStreamer test server, `detect.fps: 5`, the motion gate on, 20 s
measured after the warm-up), the two settings alternated `ROUNDS` times so the shared
machine's drift falls on both. The budget (docs/evidence.md): recording costs at most 10 %
more agent CPU and 60 MB more RSS than not recording.

    python bench/bench_recording.py      # prints a Markdown section
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE.parent, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_cameras import Sample, Servers, measure  # noqa: E402
from bench_gate import still_part  # noqa: E402

from tests.broker import Mosquitto  # noqa: E402
from tests.rtsp import RtspServer  # noqa: E402

CAMERAS = int(os.environ.get("EDGE_AGENT_BENCH_RECORDING_CAMERAS", "10"))
ROUNDS = int(os.environ.get("EDGE_AGENT_BENCH_RECORDING_ROUNDS", "2"))
CPU_BUDGET = 1.10
RSS_BUDGET_MB = 60.0


def run() -> str:
    samples: dict[bool, list[Sample]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp / "broker").start()
        quiet = RtspServer(tmp / "rtsp-quiet", video=still_part(tmp / "still.avi"))
        servers = Servers(RtspServer(tmp / "rtsp").start(), quiet.start())
        try:
            for rnd in range(ROUNDS):
                for recording in (False, True) if rnd % 2 == 0 else (True, False):
                    s = measure(tmp, broker, servers, CAMERAS, True, rnd + 1, "busy", recording)
                    samples[recording].append(s)
                    print(f"bench_recording: {s}", file=sys.stderr, flush=True)
        finally:
            servers.busy.kill()
            servers.quiet.kill()
            broker.kill()
    off, on = samples[False], samples[True]
    cpu_ratio = statistics.median(b.cpu_pct / a.cpu_pct for a, b in zip(off, on, strict=True))
    rss_delta = statistics.median(b.rss_mb - a.rss_mb for a, b in zip(off, on, strict=True))
    rows = [
        f"| {s.run} | {'on' if s.recording else 'off'} | {s.min_fps:.2f} | {s.cpu_pct:.0f} | {s.rss_mb:.0f}"
        f" | {s.others_cpu_pct:.0f} |"
        for pair in zip(off, on, strict=True)
        for s in pair
    ]
    verdict = "pass" if cpu_ratio <= CPU_BUDGET and rss_delta <= RSS_BUDGET_MB else "**not met**"
    return "\n".join(
        [
            "## Recording in the agent",
            "",
            f"`edge-agent run` with {CAMERAS} cameras on the walkway test stream (768x576, 10 fps,"
            " about 2 Mbit/s), `detect.fps: 5`, motion gate on, `evidence.clip.record` off and on"
            f" alternated, {ROUNDS} rounds (`bench/bench_recording.py`, the measurement of"
            " `bench_cameras.py`). On: each camera's reader is PyAV's and writes its packets into a"
            " ring on disk.",
            "",
            "| round | recording | slowest camera fps | agent CPU % | agent RSS MB | rest of the box CPU % |",
            "|---:|---|---:|---:|---:|---:|",
            *rows,
            "",
            f"- Agent CPU with recording / without, median of the rounds: **{cpu_ratio:.3f}**"
            f" (budget ≤ {CPU_BUDGET});"
            f" RSS difference **{rss_delta:+.0f} MB** (budget ≤ +{RSS_BUDGET_MB:.0f} MB): {verdict}.",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
