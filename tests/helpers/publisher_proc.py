"""A publisher in its own process, for the tests that SIGKILL it.

Opens the outbox, starts the MQTT publisher, emits `--events` events (with a
snapshot every tenth) at `--rate` per second, appending each sequence number to
`--progress` once the outbox has committed it, then runs until SIGTERM (clean
stop) or SIGKILL. Prints `READY` on stdout when the publisher has started.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from edge_agent.contract.topics import Topics
from edge_agent.core.backoff import Backoff
from edge_agent.core.config import MqttConfig
from edge_agent.delivery.mqtt import MqttPublisher
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.outbox_sink import OutboxSink
from tests.broker import fake_jpeg, make_event


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--start-seq", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="events per second; 0: as fast as possible")
    parser.add_argument("--cameras", default="cam-a,cam-b")
    parser.add_argument("--progress", default=None)
    parser.add_argument("--site", default="laohu")
    parser.add_argument("--device", default="edge-01")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    topics = Topics("eagleeye", args.site, args.device)
    outbox = Outbox(args.outbox, max_mb=64)
    cfg = MqttConfig(url=args.url, keepalive_s=5, stats_interval_s=60)
    publisher = MqttPublisher(cfg, outbox, topics, backoff=Backoff(0.2, 1.0))
    sink = OutboxSink(outbox, topics)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    publisher.start()
    sys.stdout.write("READY\n")
    sys.stdout.flush()

    cameras = args.cameras.split(",")
    progress = os.open(args.progress, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if args.progress else None
    began = time.monotonic()
    for n in range(args.events):
        if stopping.is_set():
            break
        seq = args.start_seq + n
        snap = fake_jpeg(seq) if seq % 10 == 0 else None
        sink.emit(make_event(seq, camera=cameras[seq % len(cameras)], snapshot=snap), snap)
        if progress is not None:
            os.write(progress, f"{seq}\n".encode())
        if args.rate > 0:
            delay = began + (n + 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    stopping.wait()
    publisher.stop(5.0)
    outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
