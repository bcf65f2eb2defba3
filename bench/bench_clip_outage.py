"""Clip delivery through a broker outage: every clip reaches the console whole.

A real Mosquitto on loopback, the real `edge-agent console` (SQLite) and a box (the agent's
own `Outbox` + `MqttPublisher` + `OutboxSink`, `mqtt.receipts: auto`). The console stops
(an upgrade at the town office); the box sends `CLIPS` alerts, each with a real MP4 clip
from `fixtures/scenarios/` (every chunk acknowledged by the broker and kept by the box);
the broker is killed with SIGKILL before it saves (its queue for the console, chunks and
all, was in memory only); broker and console start again. Counted: clips the console
stores complete with the event's sha256, clips lost, chunks sent again, and the time from
the console's return to an empty outbox.

Run from the repository root: `python -m bench.bench_clip_outage` (prints a Markdown section).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge_agent.contract.clips import chunk_count  # noqa: E402
from tests.broker import Mosquitto  # noqa: E402
from tests.console_server import ConsoleProcess  # noqa: E402
from tests.test_console_receipts_e2e import Box, _wait  # noqa: E402

CLIPS = 20


def run() -> str:
    videos = sorted((REPO / "fixtures" / "scenarios").glob("*.mp4"))
    with tempfile.TemporaryDirectory(prefix="bench-clip-outage-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker").start()
        db = work / "console.sqlite3"
        console = ConsoleProcess(work / "console", broker.url, f"sqlite:///{db}").start()
        box = Box(work, broker.url, "edge-01")
        try:
            box.publisher.start()
            box.emit(10_000)
            _wait(lambda: bool(box.publisher.counters()["receipts"]["clips_waiting"]), 30, "clip receipts")
            _wait(lambda: box.outbox.depth() == 0, 30, "the first receipt")
            console.stop()
            sent = {}
            for seq in range(CLIPS):
                data = videos[seq % len(videos)].read_bytes()
                box.emit_with_clip(seq, data)
                sent[f"edge-01-cam-a-{seq:06d}"] = data
            chunks = sum(chunk_count(len(d)) for d in sent.values())
            _wait(
                lambda: box.publisher.counters()["receipts"]["awaiting_receipt"] >= CLIPS + chunks,
                120,
                "PUBACKs",
            )
            broker.kill()
            broker.start()
            t0 = time.monotonic()
            console.start()
            _wait(lambda: box.outbox.depth() == 0, 300, "the outbox to empty")
            drain_s = time.monotonic() - t0
            resends = int(box.publisher.counters()["receipts"]["resends"])
            console.stop()
        finally:
            box.close()
            console.stop()
            broker.kill()
        with sqlite3.connect(db) as conn:
            rows = dict(conn.execute("SELECT event_id, data FROM clips WHERE complete = 1 AND sha256_ok = 1"))
    whole = sum(1 for e, d in sent.items() if rows.get(e) == d)
    mb = sum(len(d) for d in sent.values()) / 1e6
    return "\n".join(
        [
            "## Clip delivery through a broker outage",
            "",
            f"Console stopped; {CLIPS} alerts with real MP4 clips ({mb:.1f} MB in {chunks} chunks of at most"
            " 256 KiB) sent and acknowledged by Mosquitto; the broker SIGKILLed before it saved; broker and"
            " console started again (`bench/bench_clip_outage.py`).",
            "",
            "| clips sent | stored whole (sha256) | lost | items sent again | console back → outbox empty |",
            "|---:|---:|---:|---:|---:|",
            f"| {CLIPS} | {whole} | **{CLIPS - whole}** | {resends} | {drain_s:.1f} s |",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
