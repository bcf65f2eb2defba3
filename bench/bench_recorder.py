"""The stream recorder's cost: one FFmpeg segment-muxer process per recorded stream.

`StreamRecorder` (sources/recorder.py) records the looped RTSP stream of the GStreamer test
server (fixtures/walkway-a.mp4, 768x576, 10 fps) into a 30-s ring of 2-s segments for
`MEASURE_S` seconds after an 8-s warm-up; the report gives FFmpeg's CPU (from
/proc/<pid>/stat), its RSS, PSS and private memory (/proc/<pid>/smaps_rollup), the ring's
bytes on disk and the time to cut a 20-s clip. The RTSP server's CPU is not counted.

    python bench/bench_recorder.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEASURE_S = 30.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memory_mb(pid: int) -> dict[str, float]:
    out = {"rss": 0.0, "pss": 0.0, "private": 0.0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        kb = float(rest.split()[0]) if rest.split() else 0.0
        if key == "Rss":
            out["rss"] = kb / 1024
        elif key == "Pss":
            out["pss"] = kb / 1024
        elif key in ("Private_Clean", "Private_Dirty"):
            out["private"] += kb / 1024
    return out


def run() -> str:
    from edge_agent.sources.recorder import StreamRecorder, pid_of
    from tests.rtsp import RtspServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RtspServer(Path(tmp) / "rtsp").start()
        rec = StreamRecorder(server.url, Path(tmp) / "ring", keep_s=30.0, segment_s=2.0).start()
        try:
            time.sleep(8.0)
            pid = pid_of(rec)
            if pid is None:
                raise RuntimeError("the recorder's ffmpeg is not running")
            c0, t0 = _cpu_s(pid), time.monotonic()
            time.sleep(MEASURE_S)
            cpu = 100.0 * (_cpu_s(pid) - c0) / (time.monotonic() - t0)
            mem = _memory_mb(pid)
            ring_mb = rec.ring_bytes() / 1e6
            now = time.time()
            c = time.monotonic()
            clip = rec.cut(now - 20.0, now)
            cut_s = time.monotonic() - c
        finally:
            rec.stop()
            server.kill()
    return "\n".join(
        [
            "## Stream recorder (FFmpeg segment muxer)",
            "",
            "One recorded stream (768x576, 10 fps H.264 over RTSP/TCP), 30-s ring of 2-s MPEG-TS segments:",
            "",
            "| ffmpeg CPU (% of a core) | RSS (MB) | PSS (MB) | private (MB) | ring (MB) | cut 20 s (s) |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {cpu:.2f} | {mem['rss']:.1f} | {mem['pss']:.1f} | {mem['private']:.1f} | {ring_mb:.2f} | "
            f"{cut_s:.2f} ({0 if clip is None else len(clip) / 1e6:.1f} MB) |",
            "",
        ]
    )


if __name__ == "__main__":
    sys.stdout.write(run())
