"""Live cameras: how many looped RTSP streams this box sustains at `detect.fps: 5`.

One GStreamer test server (tests/rtsp_server.py) serves the walkway clip as a shared
stream that it encoded once at its start and loops, as a camera that encodes in its
own hardware does (`--encoded`: the server only packs pictures into RTP, about 1 %
of a core, where a live x264 encoder took 6-8 % of what the agent under test has);
every camera of the agent reads that URL. The agent (`edge-agent run`, a subprocess,
default model settings: two detection workers per physical core, 1 onnxruntime
thread each) reports per-camera counters in its stats every 2 s; a camera keeps up
when its analysed frame rate (frames given to the pipeline after pacing; with the
motion gate on, some of them reuse the last detections) is at least 4.8 fps of the 5
asked. The sweep runs `EDGE_AGENT_BENCH_CAMERA_RUNS` times (2) back to back. CPU
comes from /proc/<pid>/stat, RSS from /proc/<pid>/status, for the agent and, apart,
for the RTSP servers and the rest of the box (/proc/stat). Frame-to-event latency is
the time a `start` event arrives at a subscriber minus its `ts` (the wall time of
the frame it was decided on). The motion gate on a quiet scene is `bench_gate.py`.

The machine's own limit is measured in the same run, before each sweep
(`camera_limit.py`): the CPU one camera costs with nothing but decoding its stream
and a bare `session.run` on each frame due at `detect.fps`; `cores x 100 % / that`
is N_limit, the cameras that would fill the machine. The camera counts of a sweep
are fractions of N_limit (`EDGE_AGENT_BENCH_CAMERAS` gives fixed ones).
The machine's speed drifts under its hypervisor by a tenth within minutes, so the
limit is measured again right before every busy row and right after it (`ROW_LIMIT_S`
each): a busy row's camera count is its fraction of the limit before it, rounded up, and
the row is judged against the mean of the two (the limit of its own minutes). The mixed
rows' counts are fractions of the sweep's first limit. Recording off and on alternate
row by row at each size, so drift does not fall on one setting's rows more than the other's.
Two scenes: `busy` (every camera reads the walkway, people all the time) and
`mixed` (3 cameras of 4 read a quiet street, bench_gate.py's still scene, served by
a second test server; the motion gate skips the detector on most of their frames).

    python bench/bench_cameras.py            # EDGE_AGENT_BENCH_SOAK_S=600 by default (0: no soak)
"""

from __future__ import annotations

import json
import math
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

LIMIT = Path(__file__).resolve().parent / "camera_limit.py"

TARGET_FPS = 5.0
KEEPS_UP_FPS = 4.8
# past the agent's start: the model loaded, every camera online and its motion gate warm
WARMUP_S = float(os.environ.get("EDGE_AGENT_BENCH_WARMUP_S", "12"))
MEASURE_S = float(os.environ.get("EDGE_AGENT_BENCH_MEASURE_S", "20"))
RUNS = int(os.environ.get("EDGE_AGENT_BENCH_CAMERA_RUNS", "2"))
# Fixed camera counts, or empty: fractions of N_limit (`FRACTIONS`), so the sweep brackets this
# machine's own limit whatever one camera costs on it.
COUNTS = tuple(int(n) for n in os.environ.get("EDGE_AGENT_BENCH_CAMERAS", "").split(",") if n.strip())
# Dense around the target: one camera is about 5-7 % of N_limit on a 2-core box, so 0.8, 0.85
# and 0.9 each round up to their own count and the highest one that keeps up is found to
# within a camera; 0.7 fills the gap below them, where a box that misses 0.8 keeps up
# (without it a sweep on a faster box showed 10 cameras where 15 kept up).
FRACTIONS = (0.5, 0.7, 0.8, 0.85, 0.9, 1.0)
MIXED_FRACTIONS = (0.85, 1.0, 1.3, 1.6)  # quiet cameras cost less: the mix goes past N_limit
SCENES = tuple(os.environ.get("EDGE_AGENT_BENCH_SCENES", "busy,mixed").split(","))
LIMIT_S = float(os.environ.get("EDGE_AGENT_BENCH_LIMIT_S", "15"))
ROW_LIMIT_S = float(os.environ.get("EDGE_AGENT_BENCH_ROW_LIMIT_S", "10"))  # 0: no limit per row
SUSTAIN_TARGET = 0.85  # of N_limit
CPU_TARGET = 1.15  # agent CPU per analysed frame / the limit's
# --- recording -----------------------------------------------------------------------------
# Each sweep runs with per-camera recording off and on (`evidence.clip.record`, the packet
# ring of docs/evidence.md; on is the agent's default), alternating row by row (`sweep`);
# `EDGE_AGENT_BENCH_RECORDING=off` (or `on`) runs one. `recording_override` is the one
# place that sets it in the config.
RECORDING = tuple(m == "on" for m in os.environ.get("EDGE_AGENT_BENCH_RECORDING", "off,on").split(","))
WORKERS = int(os.environ.get("EDGE_AGENT_BENCH_WORKERS", "0"))  # 0: the agent's default
PATH_ZONE = [[0.0, 0.33], [0.5, 0.36], [0.85, 0.17], [1.0, 0.17], [1.0, 0.85], [0.55, 0.62], [0.3, 0.48], [0.0, 0.44]]  # fmt: skip  # noqa: E501
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    run: int
    cameras: int
    gate: bool
    scene: str  # busy: every camera sees people; mixed: 3 of 4 see a quiet street
    recording: bool
    min_fps: float
    mean_fps: float
    cpu_pct: float
    rss_mb: float
    rss_file_mb: float  # of `rss_mb`, the pages of shared libraries and other mapped files
    server_cpu_pct: float
    dropped_per_s: float
    sustained: bool
    cpu_ms_per_frame: float  # agent CPU time per analysed frame, all cameras
    others_cpu_pct: float = 0.0  # the rest of the box (other people's jobs, steal), of one core
    limit: Limit | None = None  # measured around this row, before and after (busy rows)


@dataclass
class Limit:
    """`camera_limit.py`: one camera's bare CPU, and how many such cameras fill the machine."""

    run: int
    cpu_pct: float  # of one core
    cpu_ms_per_frame: float  # per frame given to `session.run`
    cores: int
    # a limit measured around a row: N_limit before and after it, of which this is the mean
    bracket: tuple[float, float] | None = None

    @classmethod
    def around(cls, before: Limit, after: Limit) -> Limit:
        """The limit of a row's own minutes: the mean of the ones measured before and after it."""
        return cls(
            before.run,
            (before.cpu_pct + after.cpu_pct) / 2,
            (before.cpu_ms_per_frame + after.cpu_ms_per_frame) / 2,
            before.cores,
            (before.cameras, after.cameras),
        )

    @property
    def cameras(self) -> float:
        return self.cores * 100.0 / self.cpu_pct


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def box_cpu_seconds() -> float:
    """CPU seconds the box's CPUs were not free (/proc/stat: all but idle and iowait; with the
    time the hypervisor gave to other machines, `steal`)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """A memory line of /proc/<pid>/status in MB: VmRSS (all), RssFile (pages mapped from files)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def recording_override(cfg: dict[str, Any], on: bool) -> None:
    """The recording hook: per-camera recording on or off in an agent config (see RECORDING)."""
    cfg["evidence"].setdefault("clip", {})["record"] = on


def write_config(
    tmp: Path,
    broker: Mosquitto,
    url: str,
    n: int,
    gate: bool,
    quiet_url: str | None = None,
    recording: bool = False,
) -> Path:
    """N cameras on `url`; with `quiet_url`, every camera but each 4th reads that instead."""
    cams = [
        {
            "id": f"cam{i:02d}",
            "url": url if quiet_url is None or i % 4 == 0 else quiet_url,
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
    recording_override(cfg, recording)
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


@dataclass
class Servers:
    """The test servers: the walkway stream every busy camera reads, the quiet street."""

    busy: RtspServer
    quiet: RtspServer

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(s.proc.pid) for s in (self.busy, self.quiet) if s.proc is not None)


def measure(
    tmp: Path, broker: Mosquitto, servers: Servers, n: int, gate: bool, run: int, scene: str = "busy",
    recording: bool = False, beside: Limit | None = None,
) -> Sample:  # fmt: skip
    """One row; `beside` is the limit measured right before it (busy rows), which `sweep` then
    replaces by the mean of it and the one measured right after."""
    quiet_url = servers.quiet.url if scene == "mixed" else None
    config = write_config(tmp, broker, servers.busy.url, n, gate, quiet_url, recording)
    with Subscriber(broker.port, ["eagleeye/v1/bench/edge-bench/stats"]) as sub:
        sub.start()
        proc = start_agent(config, tmp / "agent.log")
        try:
            time.sleep(WARMUP_S)
            first = latest_stats(sub)
            while first is None or len(first["cameras"]) < n:
                time.sleep(0.5)
                first = latest_stats(sub)
            t0, cpu0, srv0 = time.monotonic(), cpu_seconds(proc.pid), servers.cpu_seconds()
            box0 = box_cpu_seconds()
            time.sleep(MEASURE_S)
            last = latest_stats(sub)
            t1, cpu1, srv1 = time.monotonic(), cpu_seconds(proc.pid), servers.cpu_seconds()
            box1 = box_cpu_seconds()
            rss, rss_file = rss_mb(proc.pid), rss_mb(proc.pid, "RssFile")
        finally:
            stop_agent(proc)
    assert last is not None
    a0, a1 = analysed(first), analysed(last)
    span = float(last["uptime_s"]) - float(first["uptime_s"])
    rates = [(a1[c] - a0[c]) / span for c in a1] if span > 0 else [0.0]
    dropped = (counter(last, "frames_dropped") - counter(first, "frames_dropped")) / span if span > 0 else 0.0
    cpu_per_s = (cpu1 - cpu0) / (t1 - t0)
    return Sample(
        run,
        n,
        gate,
        scene,
        recording,
        min(rates),
        statistics.mean(rates),
        100.0 * cpu_per_s,
        rss,
        rss_file,
        100.0 * (srv1 - srv0) / (t1 - t0),
        dropped,
        min(rates) >= KEEPS_UP_FPS,
        1000.0 * cpu_per_s / max(sum(rates), 1e-9),
        100.0 * max(0.0, (box1 - box0) - (cpu1 - cpu0) - (srv1 - srv0)) / (t1 - t0),
        beside,
    )


def measure_limit(url: str, run: int, seconds: float = LIMIT_S) -> Limit:
    """`camera_limit.py` in its own process, on the stream the cameras read."""
    cmd = [sys.executable, str(LIMIT), url, str(seconds), str(TARGET_FPS)]
    out = json.loads(subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout)
    cpu_s = float(out["cpu_s"])
    limit = Limit(run, 100.0 * cpu_s / out["seconds"], 1000.0 * cpu_s / out["analysed"], int(out["cores"]))
    print(f"bench_cameras: {limit}, N_limit {limit.cameras:.1f}", file=sys.stderr, flush=True)
    return limit


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


def counts_for(limit: Limit, scene: str) -> list[int]:
    if COUNTS:
        return list(COUNTS)
    fractions = MIXED_FRACTIONS if scene == "mixed" else FRACTIONS
    return sorted({max(1, round(f * limit.cameras)) for f in fractions})


def count_at(fraction: float, limit: Limit) -> int:
    """The fewest cameras that are at least `fraction` of `limit`'s N_limit."""
    return max(1, math.ceil(fraction * limit.cameras - 1e-9))


def sweep(tmp: Path, broker: Mosquitto, servers: Servers, run: int, limit: Limit) -> list[Sample]:
    """Every row of each scene, recording off and on side by side at each size.

    The two recording settings alternate row by row (off, then on, at the same fraction of
    N_limit) instead of one whole sweep after the other, so the machine's drift over the
    quarter hour a sweep takes falls on both alike. A busy row first measures the
    machine's limit right then (its speed drifts by a tenth within minutes) and takes its
    count from that; the mixed rows' counts come from the sweep's limit.
    """
    samples = []
    for scene in SCENES:
        own_limit = scene == "busy" and ROW_LIMIT_S > 0
        sizes: list[float] = list(COUNTS or FRACTIONS) if own_limit else list(counts_for(limit, scene))
        for size in sizes:
            for recording in RECORDING:
                before = measure_limit(servers.busy.url, run, ROW_LIMIT_S) if own_limit else None
                n = count_at(size, before) if before is not None and not COUNTS else int(size)
                sample = measure(tmp, broker, servers, n, True, run, scene, recording, before)
                if before is not None:
                    sample.limit = Limit.around(before, measure_limit(servers.busy.url, run, ROW_LIMIT_S))
                samples.append(sample)
                print(f"bench_cameras: {sample}", file=sys.stderr, flush=True)
    return samples


def run() -> str:
    from bench_gate import still_part
    from camera_report import report

    soak_s = float(os.environ.get("EDGE_AGENT_BENCH_SOAK_S", "600"))
    with_latency = os.environ.get("EDGE_AGENT_BENCH_LATENCY", "1") != "0"
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp / "broker").start()
        quiet = RtspServer(tmp / "rtsp-quiet", video=still_part(tmp / "still.avi"), encoded=True)
        servers = Servers(RtspServer(tmp / "rtsp", encoded=True).start(), quiet.start())
        try:
            samples: list[Sample] = []
            limits: list[Limit] = []
            for r in range(1, RUNS + 1):
                # The limit beside each sweep, on the same stream: the counts come from the first.
                limits.append(measure_limit(servers.busy.url, r))
                samples += sweep(tmp, broker, servers, r, limits[0])
                load.append(os.getloadavg())
            lat = latency(tmp, broker, servers.busy.url) if with_latency else []
            points = soak(tmp, broker, servers.busy.url, 4, soak_s) if soak_s > 0 else []
        finally:
            servers.busy.kill()
            servers.quiet.kill()
        broker.kill()
    return report(samples, limits, lat, points, soak_s, load)


if __name__ == "__main__":
    print(run())
