"""End-to-end receipts: events/s with receipts and without, PUBACK-to-receipt latency.

Starts its own Mosquitto on a free loopback port. The platform is a paho
subscriber in this process that sends one batched receipt (the contract's
payload) every `FLUSH_S` for what it received, as `edge-agent listen --receipts`
and the console do after each commit (without a database: this measures the
box's side and the round trip, not a platform's storage). The box is the
agent's own `Outbox` + `MqttPublisher` + `OutboxSink`.

Throughput: `EVENTS` events emitted as fast as the sink takes them, timed until
the outbox is empty again: with `mqtt.receipts: off` that is the last PUBACK,
with `required` the last receipt.

Run from the repository root: `python -m bench.bench_receipts` (prints a Markdown section).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge_agent.contract.receipts import Receipt, platform_status, receipt_payloads  # noqa: E402
from edge_agent.contract.topics import Topics  # noqa: E402
from edge_agent.core.config import MqttConfig  # noqa: E402
from edge_agent.delivery.mqtt import MqttPublisher  # noqa: E402
from edge_agent.delivery.outbox import Outbox  # noqa: E402
from edge_agent.delivery.outbox_sink import OutboxSink  # noqa: E402
from tests.broker import Mosquitto, make_event  # noqa: E402

TOPICS = Topics("eagleeye", "laohu", "edge-01")
EVENTS = 3000
ROUNDS = 3
FLUSH_S = 0.02


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Platform:
    """Receives events and sends their receipts, batched every FLUSH_S."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-platform")
        self.pending: list[Receipt] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("eagleeye/v1/+/+/events/#", 1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("bench platform: no SUBACK")
        online = platform_status("online", receipts=True, since="2026-12-06T00:00:00Z", name="bench")
        self.client.publish(TOPICS.platform_status, online, qos=1, retain=True).wait_for_publish(5)
        self.flusher = threading.Thread(target=self._flush_loop, daemon=True)
        self.flusher.start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        receipt = Receipt.of_event(json.loads(msg.payload))
        with self.lock:
            self.pending.append(receipt)

    def _flush_loop(self) -> None:
        while not self.stop.wait(FLUSH_S):
            with self.lock:
                batch, self.pending = self.pending, []
            for payload in receipt_payloads(batch):
                self.client.publish(TOPICS.receipts, payload, qos=1)

    def close(self) -> None:
        self.stop.set()
        self.flusher.join(2)
        self.client.publish(TOPICS.platform_status, b"", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()


def one_round(url: str, workdir: Path, mode: str) -> tuple[float, list[float], int]:
    """(events/s to an empty outbox, PUBACK-to-receipt seconds, resends)."""
    path = workdir / f"{mode}-{time.monotonic_ns()}.sqlite3"
    with Outbox(path, 256) as outbox:
        cfg = MqttConfig(url=url, stats_interval_s=3600, receipts=mode)
        pub = MqttPublisher(cfg, outbox, TOPICS)
        sink = OutboxSink(outbox, TOPICS)
        pub.start()
        try:
            deadline = time.monotonic() + 10
            while not (pub.connected and pub.counters()["receipts"]["waiting"] == (mode == "required")):
                if time.monotonic() > deadline:
                    raise RuntimeError("publisher did not connect")
                time.sleep(0.01)
            t0 = time.perf_counter()
            for seq in range(EVENTS):
                sink.emit(make_event(seq, camera=f"cam-{seq % 4}"), None)
            if pub.wait_drained(120) != 0:
                raise TimeoutError(f"{mode}: the outbox did not empty")
            elapsed = time.perf_counter() - t0
            latencies = list(pub._receipts.awaiting.latencies_s)  # the benchmark reads the publisher's record
            resends = pub._receipts.awaiting.resends
        finally:
            pub.stop(5)
    return EVENTS / elapsed, latencies, resends


def run() -> str:
    with tempfile.TemporaryDirectory(prefix="bench-receipts-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "broker").start()
        platform = Platform(broker.port)
        rates: dict[str, list[float]] = {"off": [], "required": []}
        latencies: list[float] = []
        resends = 0
        try:
            for _ in range(ROUNDS):
                for mode in ("off", "required"):
                    rate, lat, sent_again = one_round(broker.url, workdir, mode)
                    rates[mode].append(rate)
                    latencies += lat
                    resends += sent_again
        finally:
            platform.close()
            broker.kill()
    off = sorted(rates["off"])[len(rates["off"]) // 2]
    req = sorted(rates["required"])[len(rates["required"]) // 2]
    ms = [x * 1000 for x in latencies]
    lines = [
        "## Receipts",
        "",
        f"Mosquitto on loopback, started by the benchmark; {EVENTS} events of {len(make_event(0).to_json())}"
        f" bytes emitted as fast as the sink takes them, timed until the outbox is empty again; {ROUNDS}"
        f" alternating rounds, median. The platform is a paho subscriber in the same process that sends one"
        f" batched receipt every {FLUSH_S * 1000:.0f} ms for what it received (no database behind it).",
        "",
        "| mqtt.receipts | events/s to an empty outbox | leaves the outbox on |",
        "|---|---:|---|",
        f"| off | {off:.0f} | the broker's PUBACK |",
        f"| required | {req:.0f} | the platform's receipt |",
        "",
        f"- With receipts: **{req / off:.2f}×** the rate without.",
        f"- PUBACK → receipt, {len(ms)} items: p50 **{_pct(ms, 50):.1f} ms**, p99 **{_pct(ms, 99):.1f} ms**"
        f" (includes the platform's batching of up to {FLUSH_S * 1000:.0f} ms). Resends: {resends}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
