"""MQTT delivery: event-to-PUBACK latency, backlog drain rate, outbox cost per event.

Starts its own Mosquitto on a free loopback port (the helper from
tests/broker.py). The latency through the agent (durable put into the
outbox, then publish, then PUBACK, then the outbox ack) is compared with a bare
paho QoS 1 publish -> PUBACK loop on the same broker: the broker's own round
trip, the floor for any publisher.

Run from the repository root: `python -m bench.bench_mqtt` (prints a Markdown section).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge_agent.contract.topics import Topics  # noqa: E402
from edge_agent.core.backoff import Backoff  # noqa: E402
from edge_agent.core.config import MqttConfig  # noqa: E402
from edge_agent.delivery.mqtt import MqttPublisher  # noqa: E402
from edge_agent.delivery.outbox import Outbox, OutboxMessage  # noqa: E402
from edge_agent.delivery.outbox_sink import OutboxSink  # noqa: E402
from tests.broker import Mosquitto, make_event  # noqa: E402

TOPICS = Topics("eagleeye", "laohu", "edge-01")
BACKLOG = 10_000
TARGET_DRAIN_PER_S = 1000.0
TARGET_EXTRA_P99_MS = 50.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def bare_round_trip_ms(port: int, count: int) -> list[float]:
    """QoS 1 publish -> PUBACK with a plain paho client, one at a time."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    acked = threading.Event()
    client.on_publish = lambda c, u, mid, rc, props: acked.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = make_event(0).to_json().encode()
    out = []
    try:
        for _ in range(count):
            acked.clear()
            t0 = time.perf_counter()
            client.publish(TOPICS.event("cam-a", "dumping"), payload, qos=1)
            if not acked.wait(5):
                raise TimeoutError("no PUBACK within 5 s")
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        client.disconnect()
        client.loop_stop()
    return out


def agent_latency_ms(url: str, workdir: Path, count: int) -> tuple[list[float], list[float]]:
    """sink.emit() -> the outbox is empty again (PUBACK received and acked), one event at a time.

    Returns the whole latency and the part after the durable put returned.
    """
    with Outbox(workdir / "latency.sqlite3", 64) as outbox:
        pub = MqttPublisher(MqttConfig(url=url, stats_interval_s=3600), outbox, TOPICS)
        sink = OutboxSink(outbox, TOPICS)
        pub.start()
        total, after_put = [], []
        try:
            if pub.wait_drained(5) != 0 or not _wait(lambda: pub.connected, 5):
                raise RuntimeError("publisher did not connect")
            for seq in range(count):
                t0 = time.perf_counter()
                sink.emit(make_event(seq), None)
                t1 = time.perf_counter()
                if pub.wait_drained(5) != 0:
                    raise TimeoutError("event not acknowledged within 5 s")
                t2 = time.perf_counter()
                total.append((t2 - t0) * 1000)
                after_put.append((t2 - t1) * 1000)
        finally:
            pub.stop(5)
    return total, after_put


def put_cost_us(workdir: Path, count: int) -> tuple[list[float], list[float]]:
    """Microseconds per durable put: one event, and a snapshot with its event in one transaction."""
    payload = make_event(0).to_json().encode()
    jpeg = b"\xff\xd8" + bytes(150_000) + b"\xff\xd9"
    single, pair = [], []
    with Outbox(workdir / "puts.sqlite3", 256) as outbox:
        for _ in range(count):
            t0 = time.perf_counter()
            outbox.put(TOPICS.event("cam-a", "dumping"), payload, camera="cam-a")
            single.append((time.perf_counter() - t0) * 1e6)
        for seq in range(count // 4):
            msgs = [
                OutboxMessage(TOPICS.snapshot(f"e{seq}"), jpeg, camera="cam-a"),
                OutboxMessage(TOPICS.event("cam-a", "dumping"), payload, camera="cam-a"),
            ]
            t0 = time.perf_counter()
            outbox.put_many(msgs)
            pair.append((time.perf_counter() - t0) * 1e6)
    return single, pair


def drain_rate(broker: Mosquitto, workdir: Path) -> tuple[float, float]:
    """Put BACKLOG events with the broker down, start it, time until every one is acknowledged."""
    broker.stop()
    with Outbox(workdir / "drain.sqlite3", 256) as outbox:
        for start in range(0, BACKLOG, 500):
            outbox.put_many(
                [
                    OutboxMessage(TOPICS.event(f"cam-{s % 4}", "dumping"), make_event(s).to_json().encode())
                    for s in range(start, min(start + 500, BACKLOG))
                ]
            )
        broker.start()
        # A platform subscriber, so the broker does the fan-out work it does in the field.
        sub = subprocess.Popen(
            ["mosquitto_sub", "-p", str(broker.port), "-q", "1", "-t", "eagleeye/#"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        pub = MqttPublisher(
            MqttConfig(url=broker.url, stats_interval_s=3600), outbox, TOPICS, backoff=Backoff(0.2, 1.0)
        )
        try:
            t0 = time.perf_counter()
            pub.start()
            left = pub.wait_drained(120)
            elapsed = time.perf_counter() - t0
        finally:
            pub.stop(5)
            sub.terminate()
            sub.wait(5)
        if left:
            raise RuntimeError(f"{left} items still waiting after 120 s")
    return BACKLOG / elapsed, elapsed


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _mosquitto_version() -> str:
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else "mosquitto"
    return first.replace("mosquitto version ", "")


def run(latency_events: int = 300, bare_events: int = 1000, puts: int = 400) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker")
        broker.start()
        try:
            bare = bare_round_trip_ms(broker.port, bare_events)
            agent, after_put = agent_latency_ms(broker.url, work, latency_events)
            single, pair = put_cost_us(work, puts)
            rate, drain_s = drain_rate(broker, work)
        finally:
            broker.kill()
    extra_p99 = _pct(agent, 99) - _pct(bare, 99)
    ok_latency = "met" if extra_p99 <= TARGET_EXTRA_P99_MS else "MISSED"
    ok_drain = "met" if rate >= TARGET_DRAIN_PER_S else "MISSED"
    lines = [
        "## MQTT delivery",
        "",
        f"Mosquitto {_mosquitto_version()} on loopback, started by the benchmark; QoS 1; events of"
        f" {len(make_event(0).to_json())} bytes. The outbox commits every put with `synchronous=FULL`"
        " (an fsync), so the disk, not the network, sets the latency floor.",
        "",
        "| measure | p50 | p99 | mean |",
        "|---|---|---|---|",
        f"| broker round trip, bare paho publish → PUBACK ({bare_events}) | {_pct(bare, 50):.2f} ms"
        f" | {_pct(bare, 99):.2f} ms | {statistics.fmean(bare):.2f} ms |",
        f"| event → PUBACK through the agent: put + publish + PUBACK + ack ({latency_events}) |"
        f" {_pct(agent, 50):.2f} ms | {_pct(agent, 99):.2f} ms | {statistics.fmean(agent):.2f} ms |",
        f"| the same, from the put's return: publish + PUBACK + ack | {_pct(after_put, 50):.2f} ms"
        f" | {_pct(after_put, 99):.2f} ms | {statistics.fmean(after_put):.2f} ms |",
        f"| outbox put, one event ({puts}) | {_pct(single, 50):.0f} µs | {_pct(single, 99):.0f} µs |"
        f" {statistics.fmean(single):.0f} µs |",
        f"| outbox put, 150 KB snapshot + event in one transaction ({len(pair)}) | {_pct(pair, 50):.0f} µs |"
        f" {_pct(pair, 99):.0f} µs | {statistics.fmean(pair):.0f} µs |",
        "",
        f"- Agent p99 beyond the broker's own p99: **{extra_p99:.1f} ms**"
        f" (target ≤ {TARGET_EXTRA_P99_MS:.0f} ms: {ok_latency}).",
        f"- Backlog drain after an outage: {BACKLOG} events put with the broker down, then the broker"
        f" started with one QoS 1 subscriber: all acknowledged in {drain_s:.2f} s, **{rate:.0f} events/s**"
        f" (target ≥ {TARGET_DRAIN_PER_S:.0f}/s: {ok_drain}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
