"""The stream recorder's cost: the PyAV packet ring in the agent's process, and FFmpeg.

PyAV (sources/packet_ring.py, av_capture.py): a child process like the agent's reading side
runs `CAMERAS` RtspSource cameras on the GStreamer test server's looped stream (768x576,
10 fps) paced at 5 fps, a thread taking every frame handed over (no detector), once without
rings (the OpenCV reader) and once with a ring per camera (PyAV: one session feeds ring and
frames; 30-s ring of 2-s segments); the difference is what recording costs: CPU of one core
(/proc/<pid>/stat over `MEASURE_S` after a warm-up), RSS, PSS and private memory
(/proc/<pid>/smaps_rollup), the rings' bytes on disk and the time to cut a 20-s clip.
The runs alternate, `ROUNDS` each, so a busy moment of the shared machine hits both.

FFmpeg (sources/recorder.py, with `EDGE_AGENT_BENCH_RECORDER_FFMPEG=1`): `StreamRecorder`
records the looped RTSP stream of the GStreamer test server (fixtures/walkway-a.mp4, 768x576,
10 fps) into a 30-s ring of 2-s segments for
`MEASURE_S` seconds after an 8-s warm-up; the report gives FFmpeg's CPU (from
/proc/<pid>/stat), its RSS, PSS and private memory (/proc/<pid>/smaps_rollup), the ring's
bytes on disk and the time to cut a 20-s clip. The RTSP server's CPU is not counted.

    python bench/bench_recorder.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEASURE_S = float(os.environ.get("EDGE_AGENT_BENCH_RECORDER_S", "20"))
WARMUP_S = 8.0
CAMERAS = 10
ROUNDS = int(os.environ.get("EDGE_AGENT_BENCH_RECORDER_ROUNDS", "2"))


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


def child(mode: str, url: str, folder: Path, seconds: float) -> None:
    """The measured process: CAMERAS readers paced at 5 fps, with or without rings."""
    from edge_agent.core.config import CameraConfig
    from edge_agent.sources.rtsp import RtspSource

    rings = []
    sources = []
    for i in range(CAMERAS):
        ring = None
        if mode == "ring":
            from edge_agent.sources.packet_ring import PacketRing

            ring = PacketRing(folder / f"cam{i:02d}", keep_s=30.0, max_mb=64.0, segment_s=2.0)
            rings.append(ring)
        cam = CameraConfig(id=f"cam{i:02d}", url=url)
        sources.append(RtspSource(cam, pace_fps=5.0, ring=ring))
    taken = [0]
    stop = threading.Event()

    def take() -> None:  # a detection worker's side: every frame handed over is taken
        last = [-1] * len(sources)
        while not stop.is_set():
            for k, src in enumerate(sources):
                frame = src.latest(last[k])
                if frame is not None:
                    last[k] = frame.index
                    taken[0] += 1
            time.sleep(0.02)

    for src in sources:
        src.start()
    worker = threading.Thread(target=take, daemon=True)
    worker.start()
    time.sleep(seconds)
    result: dict[str, float] = {"taken": taken[0], "online": sum(s.status == "online" for s in sources)}
    if rings:
        from edge_agent.app.recording import RingClipCutter
        from edge_agent.core.masks import PrivacyMasks

        result["ring_mb"] = sum(int(r.stats()["bytes"]) for r in rings) / 1e6
        end = sources[0].media_now()
        t0 = time.monotonic()
        clip = RingClipCutter(rings[0], PrivacyMasks([]), 10.0).cut([(end - 20.0, end)])
        result["cut_s"] = time.monotonic() - t0
        result["clip_mb"] = 0.0 if clip is None else len(clip.data) / 1e6
    stop.set()
    for src in sources:
        src.stop()
    sys.stdout.write(json.dumps(result) + "\n")


def measure_child(mode: str, url: str, tmp: Path) -> dict[str, float]:
    folder = tmp / f"rings-{mode}"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, "--url", url, "--dir", str(folder),
         "--seconds", str(WARMUP_S + MEASURE_S + 0.5)],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )  # fmt: skip
    time.sleep(WARMUP_S)
    c0, t0 = _cpu_s(proc.pid), time.monotonic()
    time.sleep(MEASURE_S)
    cpu = 100.0 * (_cpu_s(proc.pid) - c0) / (time.monotonic() - t0)
    mem = _memory_mb(proc.pid)
    out, _ = proc.communicate(timeout=120)
    result = json.loads(out.decode().strip().splitlines()[-1])
    return {"cpu": cpu, **mem, **result}


def pyav_section() -> str:
    from tests.rtsp import RtspServer

    runs: dict[str, list[dict[str, float]]] = {"plain": [], "ring": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = RtspServer(Path(tmp) / "rtsp").start()
        try:
            for _ in range(ROUNDS):
                for mode in ("plain", "ring"):
                    runs[mode].append(measure_child(mode, server.url, Path(tmp)))
        finally:
            server.kill()

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    rows = []
    for mode, label in (("plain", "OpenCV reader, no ring"), ("ring", "PyAV reader + ring")):
        for r in runs[mode]:
            rows.append(
                f"| {label} | {r['cpu']:.1f} | {r['rss']:.0f} | {r['pss']:.0f} | {r['private']:.0f} | "
                f"{int(r['online'])}/{CAMERAS} |"
            )
    d_cpu = med("ring", "cpu") - med("plain", "cpu")
    d_rss = med("ring", "rss") - med("plain", "rss")
    d_priv = med("ring", "private") - med("plain", "private")
    return "\n".join(
        [
            "## Stream recorder (PyAV packet ring, in the agent's process)",
            "",
            f"One process with {CAMERAS} RtspSource cameras on the looped RTSP test stream (768x576, 10 fps"
            f" H.264 over TCP), paced at 5 fps, a thread taking every frame (no detector); with rings: 30-s"
            f" ring of 2-s segments per camera. {MEASURE_S:g} s measured after {WARMUP_S:g} s, {ROUNDS}"
            " alternating runs each:",
            "",
            "| reader | CPU (% of a core) | RSS (MB) | PSS (MB) | private (MB) | online |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Recording {CAMERAS} cameras (medians): CPU {d_cpu:+.1f} points of one core "
            f"({100 * d_cpu / med('plain', 'cpu'):+.0f} % of the reading side's), RSS {d_rss:+.0f} MB,"
            f" private {d_priv:+.0f} MB. Rings on disk {med('ring', 'ring_mb'):.1f} MB; a 20-s clip"
            f" ({med('ring', 'clip_mb'):.1f} MB) cut in {med('ring', 'cut_s'):.2f} s.",
            "",
        ]
    )


def run() -> str:
    text = pyav_section()
    if os.environ.get("EDGE_AGENT_BENCH_RECORDER_FFMPEG") == "1":
        text += "\n" + ffmpeg_section()
    return text


def ffmpeg_section() -> str:
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", choices=("plain", "ring"))
    p.add_argument("--url")
    p.add_argument("--dir", type=Path)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    if args.child:
        child(args.child, args.url, args.dir, args.seconds)
    else:
        sys.stdout.write(run())


if __name__ == "__main__":
    main()
