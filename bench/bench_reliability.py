"""Reliability: what reaches the platform through broker outages, kills, a full disk, poison items.

Each scenario runs the real delivery path (outbox, publisher, a real Mosquitto
from tests/broker.py, the disk-full one on a real small tmpfs) and counts at a
persistent subscriber, as a platform would: `sent` events the box stored (or
was handed, for the disk-full case), `received` distinct events, `lost`,
`duplicated` (copies beyond the first, which the platform drops by event id).

Run from the repository root: `python -m bench.bench_reliability` (prints a Markdown section).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge_agent.contract.topics import Topics  # noqa: E402
from edge_agent.core.backoff import Backoff  # noqa: E402
from edge_agent.core.config import MqttConfig  # noqa: E402
from edge_agent.delivery.mqtt import MqttPublisher  # noqa: E402
from edge_agent.delivery.outbox import Outbox  # noqa: E402
from edge_agent.delivery.outbox_sink import OutboxSink  # noqa: E402
from edge_agent.pipeline.evidence import EvidenceStore  # noqa: E402
from tests.broker import Mosquitto, Subscriber, dedup, fake_jpeg, make_event  # noqa: E402

TOPICS = Topics("eagleeye", "laohu", "edge-01")
EVENTS = "eagleeye/v1/+/+/events/#"
HELPER = REPO / "tests" / "helpers" / "publisher_proc.py"
Row = tuple[str, int, int, int, int, str]


def _publisher(url: str, outbox: Outbox, sink: OutboxSink | None = None) -> MqttPublisher:
    cfg = MqttConfig(url=url, keepalive_s=5, stats_interval_s=60)
    extra = sink.counters if sink is not None else None
    return MqttPublisher(cfg, outbox, TOPICS, backoff=Backoff(0.2, 0.5), outbox_extra=extra)


def _count(sub: Subscriber, sent: set[int]) -> tuple[int, int, int]:
    events = sub.events()
    seqs = {int(e["details"]["seq"]) for e in dedup(events)}
    return len(seqs & sent), len(sent - seqs), len(events) - len(dedup(events))


def _settle(sub: Subscriber, want: int, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        sub.wait_events(want, timeout_s)


def outages(work: Path, count: int = 5, outage_s: float = 2.0) -> Row:
    broker = Mosquitto(work / "broker").start()
    outbox = Outbox(work / "outbox.sqlite3", 64)
    sink = OutboxSink(outbox, TOPICS)
    sub = Subscriber(broker.port, [EVENTS], client_id="bench-outages").start()
    pub = _publisher(broker.url, outbox)
    pub.start()
    seq = 0

    def emit_for(seconds: float, rate: float) -> None:
        nonlocal seq
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sink.emit(make_event(seq, camera=("cam-a", "cam-b")[seq % 2]), None)
            seq += 1
            time.sleep(1 / rate)

    try:
        for _ in range(count):
            emit_for(1.0, 100)
            broker.stop()
            emit_for(outage_s, 50)
            broker.start()
        emit_for(1.0, 100)
        pub.wait_drained(30)
        _settle(sub, seq, 30)
        received, lost, dup = _count(sub, set(range(seq)))
    finally:
        pub.stop(5)
        sub.close()
        outbox.close()
        broker.kill()
    return (f"{count} broker outages of {outage_s:g} s (SIGTERM)", seq, received, lost, dup, "")


def _spawn(url: str, outbox: Path, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), "--url", url, "--outbox", str(outbox), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def kills(work: Path, count: int = 3) -> Row:
    broker = Mosquitto(work / "broker").start()
    outbox = work / "outbox.sqlite3"
    progress = work / "progress.txt"
    progress.touch()
    sub = Subscriber(broker.port, [EVENTS], client_id="bench-kills").start()
    start = 0
    try:
        for n in range(count):
            proc = _spawn(broker.url, outbox, "--events", "100000", "--rate", "300",
                          "--start-seq", str(start), "--progress", str(progress))  # fmt: skip
            if n == 1:
                broker.stop()  # one kill with a backlog waiting for the broker
            time.sleep(1.5)
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            if n == 1:
                broker.start()
            start = max([int(s) for s in progress.read_text().split()] or [0]) + 1000
        last = _spawn(broker.url, outbox, "--events", "0")
        committed = {int(s) for s in progress.read_text().split()}
        _settle(sub, len(committed), 30)
        last.send_signal(signal.SIGTERM)
        last.wait(10)
        received, lost, dup = _count(sub, committed)
    finally:
        sub.close()
        broker.kill()
    note = "sent: committed to the outbox before the kill"
    return (f"{count} SIGKILLs of the publisher (one with the broker down)", len(committed), received,
            lost, dup, note)  # fmt: skip


def disk_full(work: Path) -> Row:
    name = "full 3 MB tmpfs, broker down then up"
    if os.geteuid() != 0:
        return (name, 0, 0, 0, 0, "not run: mounting a tmpfs needs root")
    disk = work / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        return (name, 0, 0, 0, 0, "not run: cannot mount a tmpfs here")
    broker = Mosquitto(work / "broker")
    try:
        outbox = Outbox(disk / "outbox.sqlite3", 64, reserve_mb=0.25)
        evidence = EvidenceStore(disk / "evidence", max_mb=64, reserve_mb=1)
        sink = OutboxSink(outbox, TOPICS)
        total = 300
        for seq in range(total):
            snap = fake_jpeg(seq, 20_000)
            event = make_event(seq, camera=("cam-a", "cam-b")[seq % 2], snapshot=snap)
            evidence.save(event.event_id, snap)
            sink.emit(event, snap)
        held = sink.counters()
        broker.start()
        sub = Subscriber(broker.port, [EVENTS], client_id="bench-disk").start()
        pub = _publisher(broker.url, outbox, sink)
        pub.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (sink.retry() or pub.wait_drained(0.2)):
            time.sleep(0.1)
        _settle(sub, total, 20)
        pub.stop(5)
        sub.close()
        outbox.close()
        received, lost, dup = _count(sub, set(range(total)))
        temps = len(list(disk.rglob("*.tmp")))
        ev = evidence.counters()
        gave_way = ev["refused_low_space"] + ev["pruned"]
        note = (
            f"{held['held_in_memory']} messages held in memory at the peak, "
            f"{gave_way} pictures refused or pruned, {temps} temp files left"
        )
        return (name, total, received, lost, dup, note)
    finally:
        broker.kill()
        subprocess.run(["umount", "-l", str(disk)], check=False)


def poison(work: Path) -> Row:
    broker = Mosquitto(work / "broker", extra_conf="max_packet_size 20000\n").start()
    outbox = Outbox(work / "outbox.sqlite3", 64)
    sink = OutboxSink(outbox, TOPICS)
    total = 200
    for seq in range(total):
        sink.emit(make_event(seq, camera=("cam-a", "cam-b")[seq % 2]), None)
        if seq == 50:
            outbox.put("eagleeye/v1/laohu/edge-01/events/cam-a/rule+1", b"{}", camera="cam-a")
        if seq == 120:
            outbox.put(TOPICS.snapshot("edge-01-cam-a-big"), b"x" * 50_000, camera="cam-a")
    sub = Subscriber(broker.port, [EVENTS], client_id="bench-poison").start()
    pub = _publisher(broker.url, outbox)
    pub.start()
    try:
        pub.wait_drained(60)
        _settle(sub, total, 20)
        received, lost, dup = _count(sub, set(range(total)))
        dead = outbox.counters()["dead_lettered"]
    finally:
        pub.stop(5)
        sub.close()
        outbox.close()
        broker.kill()
    note = (
        f"{dead} poison items (a `+` topic, one over max_packet_size) moved to the dead letters;"
        " the duplicates are what was in flight when the big item first broke the connection"
    )
    return ("2 poison items among 200 events", total, received, lost, dup, note)


def run() -> str:
    scenarios: list[Callable[[Path], Row]] = [outages, kills, disk_full, poison]
    rows: list[Row] = []
    timings: dict[str, float] = {}
    for scenario in scenarios:
        with tempfile.TemporaryDirectory(prefix=f"bench-{scenario.__name__}-") as tmp:
            t0 = time.monotonic()
            rows.append(scenario(Path(tmp)))
            timings[scenario.__name__] = time.monotonic() - t0
    lines = [
        "## Reliability",
        "",
        "Real Mosquitto, real outbox and publisher; counted at a persistent subscriber after"
        " deduplication by `(event_id, phase, ts)`. The machine was shared with other work while"
        " this ran (2 cores, loaded): the counts do not depend on it, the times would.",
        "",
        "| fault | sent | received | lost | duplicated | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [f"| {n} | {s} | {r} | {lo} | {d} | {note} |" for n, s, r, lo, d, note in rows]
    lines += ["", "Time per scenario: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
