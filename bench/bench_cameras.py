"""Live cameras: how many looped RTSP streams this box sustains at `detect.fps: 5`.

One GStreamer test server (tests/rtsp_server.py) serves the walkway clip as a
shared stream, so it encodes once however many cameras read it; every camera
of the agent reads that URL. The agent (`edge-agent run`, a subprocess, default
model settings: one detection worker per physical core, 1 onnxruntime thread
each) reports per-camera counters in its stats every 2 s; a camera keeps up
when its analysed frame rate (frames given to the pipeline after pacing; with
the motion gate on, some of them reuse the last detections) is at least
4.8 fps of the 5 asked. The sweep runs `EDGE_AGENT_BENCH_CAMERA_RUNS` times (2)
back to back. CPU comes from /proc/<pid>/stat, RSS from /proc/<pid>/status,
for the agent and, apart, for the RTSP server. Frame-to-event latency is the
time a `start` event arrives at a subscriber minus its `ts` (the wall time of
the frame it was decided on). The motion gate on a quiet scene is `bench_gate.py`.

    python bench/bench_cameras.py            # EDGE_AGENT_BENCH_SOAK_S=600 by default (0: no soak)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.broker import Mosquitto, Subscriber  # noqa: E402
from tests.rtsp import RtspServer  # noqa: E402

TARGET_FPS = 5.0
KEEPS_UP_FPS = 4.8
WARMUP_S = float(os.environ.get("EDGE_AGENT_BENCH_WARMUP_S", "8"))
MEASURE_S = float(os.environ.get("EDGE_AGENT_BENCH_MEASURE_S", "20"))
RUNS = int(os.environ.get("EDGE_AGENT_BENCH_CAMERA_RUNS", "2"))
COUNTS = tuple(int(n) for n in os.environ.get("EDGE_AGENT_BENCH_CAMERAS", "1,2,4,8,10,12").split(","))
WORKERS = int(os.environ.get("EDGE_AGENT_BENCH_WORKERS", "0"))  # 0: the agent's default
PATH_ZONE = [[0.0, 0.33], [0.5, 0.36], [0.85, 0.17], [1.0, 0.17], [1.0, 0.85], [0.55, 0.62], [0.3, 0.48], [0.0, 0.44]]  # fmt: skip  # noqa: E501
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    run: int
    cameras: int
    gate: bool
    min_fps: float
    mean_fps: float
    cpu_pct: float
    rss_mb: float
    rss_file_mb: float  # of `rss_mb`, the pages of shared libraries and other mapped files
    server_cpu_pct: float
    dropped_per_s: float
    sustained: bool


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """A memory line of /proc/<pid>/status in MB: VmRSS (all), RssFile (pages mapped from files)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def write_config(tmp: Path, broker: Mosquitto, url: str, n: int, gate: bool) -> Path:
    cams = [
        {
            "id": f"cam{i:02d}",
            "url": url,
            "detect": {"fps": TARGET_FPS, "motion_gate": gate},
            "zones": {"path": {"polygon": PATH_ZONE}},
            "rules": [{"id": "people", "kind": "presence", "zone": "path", "labels": ["person"]}],
        }
        for i in range(n)
    ]
    cfg = {
        "version": 1,
        "site": {"id": "bench"},
        "device": {"id": "edge-bench"},
        "model": {"name": "yolox-nano", **({"workers": WORKERS} if WORKERS else {})},
        "mqtt": {"url": broker.url, "stats_interval_s": 2},
        "outbox": {"path": str(tmp / f"outbox-{n}-{gate}.sqlite3")},
        "evidence": {"dir": str(tmp / "evidence")},
        "cameras": cams,
    }
    path = tmp / f"config-{n}-{gate}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def stop_agent(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def latest_stats(sub: Subscriber) -> dict[str, Any] | None:
    stats = [m for m in sub.snapshot() if m.topic.endswith("/stats")]
    return json.loads(stats[-1].payload) if stats else None


def analysed(stats: dict[str, Any]) -> dict[str, int]:
    return {cam: int(v.get("analysed_frames", 0)) for cam, v in stats["cameras"].items()}


def counter(stats: dict[str, Any], key: str) -> int:
    return sum(int(v.get(key, 0)) for v in stats["cameras"].values())


def measure(tmp: Path, broker: Mosquitto, server: RtspServer, n: int, gate: bool, run: int) -> Sample:
    assert server.proc is not None
    with Subscriber(broker.port, ["eagleeye/v1/bench/edge-bench/stats"]) as sub:
        sub.start()
        proc = start_agent(write_config(tmp, broker, server.url, n, gate), tmp / "agent.log")
        try:
            time.sleep(WARMUP_S)
            first = latest_stats(sub)
            while first is None or len(first["cameras"]) < n:
                time.sleep(0.5)
                first = latest_stats(sub)
            t0, cpu0, srv0 = time.monotonic(), cpu_seconds(proc.pid), cpu_seconds(server.proc.pid)
            time.sleep(MEASURE_S)
            last = latest_stats(sub)
            t1, cpu1, srv1 = time.monotonic(), cpu_seconds(proc.pid), cpu_seconds(server.proc.pid)
            rss, rss_file = rss_mb(proc.pid), rss_mb(proc.pid, "RssFile")
        finally:
            stop_agent(proc)
    assert last is not None
    a0, a1 = analysed(first), analysed(last)
    span = float(last["uptime_s"]) - float(first["uptime_s"])
    rates = [(a1[c] - a0[c]) / span for c in a1] if span > 0 else [0.0]
    dropped = (counter(last, "frames_dropped") - counter(first, "frames_dropped")) / span if span > 0 else 0.0
    return Sample(
        run,
        n,
        gate,
        min(rates),
        statistics.mean(rates),
        100.0 * (cpu1 - cpu0) / (t1 - t0),
        rss,
        rss_file,
        100.0 * (srv1 - srv0) / (t1 - t0),
        dropped,
        min(rates) >= KEEPS_UP_FPS,
    )


def latency(tmp: Path, broker: Mosquitto, url: str) -> list[float]:
    """Frame-to-event latency: arrival of `start` events minus their frame time, one camera."""
    got: list[float] = []
    with Subscriber(broker.port, ["eagleeye/v1/bench/edge-bench/events/#"]) as sub:
        sub.start()
        config = write_config(tmp, broker, url, 1, True)
        cfg = yaml.safe_load(config.read_text())
        # a line across the walkway: crossings are frequent, each a fresh start event
        cfg["cameras"][0]["lines"] = {"mid": {"points": [[0.5, 0.25], [0.5, 0.75]]}}
        rule = {"id": "cross", "kind": "line_cross", "line": "mid", "labels": ["person"]}
        cfg["cameras"][0]["rules"] = [rule]
        config.write_text(yaml.safe_dump(cfg))
        proc = start_agent(config, tmp / "agent-latency.log")
        try:
            time.sleep(45)
        finally:
            stop_agent(proc)
        for m in sub.snapshot():
            ev = json.loads(m.payload)
            if ev.get("phase") == "start":
                ts = datetime.fromisoformat(ev["ts"].replace("Z", "+00:00")).timestamp()
                got.append((m.received_at - ts) * 1000.0)
    return got


def soak(tmp: Path, broker: Mosquitto, url: str, n: int, seconds: float) -> list[tuple[float, float]]:
    """RSS over a long run: (seconds since start, MB) every 30 s."""
    proc = start_agent(write_config(tmp, broker, url, n, True), tmp / "agent-soak.log")
    points = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(min(30.0, seconds))
            points.append((time.monotonic() - t0, rss_mb(proc.pid)))
    finally:
        stop_agent(proc)
    return points


def sweep(tmp: Path, broker: Mosquitto, server: RtspServer, run: int) -> list[Sample]:
    samples = []
    for n in COUNTS:
        sample = measure(tmp, broker, server, n, True, run)
        samples.append(sample)
        print(f"bench_cameras: {sample}", file=sys.stderr, flush=True)
    return samples


def run() -> str:
    soak_s = float(os.environ.get("EDGE_AGENT_BENCH_SOAK_S", "600"))
    with_latency = os.environ.get("EDGE_AGENT_BENCH_LATENCY", "1") != "0"
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp / "broker").start()
        server = RtspServer(tmp / "rtsp").start()
        try:
            samples: list[Sample] = []
            for r in range(1, RUNS + 1):
                samples += sweep(tmp, broker, server, r)
                load.append(os.getloadavg())
            lat = latency(tmp, broker, server.url) if with_latency else []
            points = soak(tmp, broker, server.url, 4, soak_s) if soak_s > 0 else []
        finally:
            server.kill()
        broker.kill()
    return report(samples, lat, points, soak_s, load)


def report(
    samples: list[Sample],
    lat: list[float],
    points: list[tuple[float, float]],
    soak_s: float,
    load: list[tuple[float, float, float]],
) -> str:
    runs = sorted({s.run for s in samples})

    def most(run: int) -> int:
        ok = [s.cameras for s in samples if s.run == run and s.sustained]
        return max(ok) if ok else 0

    lines = [
        "## Live cameras",
        "",
        f"`edge-agent run` with N cameras reading one looped RTSP stream (walkway clip, 768x576, 10 fps)"
        f" from the GStreamer test server, `detect.fps: {TARGET_FPS:g}`, motion gate on (the default),"
        " YOLOX-Nano with the default model settings (one detection worker per physical core, 1"
        f" onnxruntime thread each); {MEASURE_S:g} s measured after {WARMUP_S:g} s warm-up, the sweep run"
        f" {len(runs)} times back to back. The test server (x264 encoding, shared by all cameras) runs on"
        " the same 2 cores; its CPU is reported apart. Keeps up: every camera analyses ≥"
        f" {KEEPS_UP_FPS:g} of the {TARGET_FPS:g} frames/s asked. Load average (1/5/15 min) before and"
        " after each sweep: " + "; ".join(f"{a:.2f} {b:.2f} {c:.2f}" for a, b, c in load) + ".",
        "",
        "| run | cameras | slowest camera fps | mean fps | agent CPU % (of one core) | CPU % per camera"
        " | agent RSS MB | of it, mapped files MB | RTSP server CPU % | frames dropped/s | keeps up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in samples:
        lines.append(
            f"| {s.run} | {s.cameras} | {s.min_fps:.2f} | {s.mean_fps:.2f} | {s.cpu_pct:.0f} "
            f"| {s.cpu_pct / s.cameras:.0f} | {s.rss_mb:.0f} | {s.rss_file_mb:.0f} | {s.server_cpu_pct:.0f} "
            f"| {s.dropped_per_s:.1f} | {'yes' if s.sustained else 'no'} |"
        )
    at10 = [s for s in samples if s.cameras == 10]
    lines += [
        "",
        "- Most cameras kept up: " + ", ".join(f"run {r}: **{most(r)}**" for r in runs) + " (target: 10 in"
        " two consecutive runs).",
    ]
    if at10:
        lines.append(
            "- At 10 cameras: slowest camera "
            + " / ".join(f"{s.min_fps:.2f}" for s in at10)
            + " fps, RSS "
            + " / ".join(f"{s.rss_mb:.0f}" for s in at10)
            + " MB (targets ≥ 4.8 fps, ≤ 300 MB)."
        )
    rss1 = [s.rss_mb for s in samples if s.cameras == 1]
    rss_hi = [s for s in samples if s.cameras == max(COUNTS)]
    if rss1 and rss_hi:
        per_cam = (statistics.mean(s.rss_mb for s in rss_hi) - statistics.mean(rss1)) / (max(COUNTS) - 1)
        lines.append(f"- RSS grows {per_cam:.1f} MB per camera (1 to {max(COUNTS)} cameras).")
    lines.append(
        "- RSS counts the pages of the shared libraries (OpenCV, onnxruntime, FFmpeg) the process has"
        " mapped from files; how many of them are resident depends on the page cache, not on the agent:"
        " the same build at one camera measured 223 MB right after `make setup` and 168 MB an hour"
        " later on the same box, with the same heap and anonymous memory (OpenCV's library alone went"
        " from 39 to 11 MB resident). Compare the rows of one run."
    )
    if lat:
        lines.append(
            f"- Frame-to-event latency (line crossings, one camera, {len(lat)} events): "
            f"median {statistics.median(lat):.0f} ms, max {max(lat):.0f} ms."
        )
    if len(points) >= 2:
        first, last = points[0], points[-1]
        peak = max(p[1] for p in points)
        lines.append(
            f"- RSS over a {soak_s / 60:.0f}-minute run at 4 cameras: "
            f"{first[1]:.0f} MB after {first[0]:.0f} s, "
            f"{last[1]:.0f} MB at the end, peak {peak:.0f} MB (growth {last[1] - first[1]:+.0f} MB)."
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
