"""`edge-agent listen`: the reference subscriber for platform teams.

Subscribes to every device's events (and snapshots and status) under a topic prefix,
checks each event against `mqtt/event.schema.json`, drops the duplicates that at-
least-once delivery brings (by `(event_id, phase, ts)`), saves snapshots as
`<event_id>.jpg` and a left object's owner crop as `<event_id>-owner.jpg`, puts each
event's clip together from its chunks (checking the sha256 the event names) as
`<event_id>.mp4`, and prints one line per event. With `--store FILE` each new event
is appended to FILE (one JSON line, synced to disk) and FILE is read at start, so an
event is stored once across restarts. With `--receipts` it is a receipt-sending
platform (`contract/receipts.py`): it announces itself on the retained platform
status (Last Will `offline`) and sends a receipt for each event once it is stored
(duplicates too: the box may not have had the first one).
This is CLI code: its output goes to stdout with `print`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import ssl
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from edge_agent.app.config import load_config
from edge_agent.contract.clips import Assembled, ClipAssembler
from edge_agent.contract.mqtt_client import ClientSetupError, make_client, new_client_id, parse_broker_url
from edge_agent.contract.receipts import Receipt, platform_status, receipt_payloads
from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import API_VERSION, all_devices_filter, device_receipts, platform_status_topic
from edge_agent.core.config import ConfigError, MqttConfig, TlsConfig, redact
from edge_agent.core.types import iso_utc
from edge_agent.tools.event_line import event_line

_SEEN_MAX = 100_000  # (event_id, phase, ts) keys remembered for deduplication
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config",
        metavar="CFG",
        help="take the broker and credentials from a config file (default without --url: the box's config)",
    )
    source.add_argument("--url", metavar="URL", help="broker URL, mqtt://host[:port] or mqtts://host[:port]")
    parser.add_argument("--username", help="MQTT user name (overrides the config)")
    parser.add_argument("--password-file", metavar="FILE", help="file holding the MQTT password")
    parser.add_argument("--ca", metavar="FILE", help="CA certificate to check the broker with (mqtts://)")
    parser.add_argument("--cert", metavar="FILE", help="client certificate, if the broker wants one")
    parser.add_argument("--key", metavar="FILE", help="the client certificate's key")
    parser.add_argument("--prefix", default=None, help="topic prefix (default: the config's, else eagleeye)")
    parser.add_argument("--snapshots", metavar="DIR", help="save snapshots here as <event_id>.jpg")
    parser.add_argument(
        "--clips", metavar="DIR", help="save clips here as <event_id>.mp4 (default: the --snapshots DIR)"
    )
    parser.add_argument("--count", type=int, metavar="N", help="exit after N distinct events")
    parser.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds")
    parser.add_argument("--json", action="store_true", help="print each event as a JSON line")
    parser.add_argument(
        "--store",
        metavar="FILE",
        help="append each new event to FILE (JSON lines); read at start to drop duplicates",
    )
    parser.add_argument(
        "--receipts",
        action="store_true",
        help="announce receipts on the platform status and send one for each event once it is stored",
    )
    parser.add_argument(
        "--client-id",
        metavar="ID",
        help="use a persistent session under this id (the broker queues while away)",
    )


def _settings(args: argparse.Namespace) -> MqttConfig:
    """The broker settings: the config's mqtt section (or --url), with the options on top."""
    if args.config:
        cfg = load_config(args.config)
        if cfg.mqtt is None:
            raise ValueError(f"{args.config} has no mqtt section; give --url instead")
        mqtt = cfg.mqtt
    else:
        parse_broker_url(args.url)  # a bad URL is one clear line, before the model sees it
        mqtt = MqttConfig(url=args.url)
    over: dict[str, Any] = {}
    if args.username:
        over["username"] = args.username
    if args.password_file:
        over["password_file"] = args.password_file
    files = {k: v for k, v in (("ca", args.ca), ("cert", args.cert), ("key", args.key)) if v}
    if files:
        over["tls"] = (mqtt.tls or TlsConfig()).model_copy(update=files)
    if args.prefix:
        over["topic_prefix"] = args.prefix
    return mqtt.model_copy(update=over)


def _err(text: str) -> None:
    print(f"listen: {text}", file=sys.stderr, flush=True)


class _Listener:
    """Message handling (runs on paho's network thread)."""

    def __init__(self, args: argparse.Namespace, prefix: str) -> None:
        self.json = bool(args.json)
        self.count = args.count
        self.snapshots = Path(args.snapshots) if args.snapshots else None
        clips = args.clips or args.snapshots
        self.clips = Path(clips) if clips else None
        self.assembler = ClipAssembler()
        self.clips_saved = 0
        self.owner_crops = 0
        self.clips_bad = 0
        self.prefix = prefix
        self.seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self.snapshot_sha: OrderedDict[str, str] = OrderedDict()
        self.events = 0
        self.duplicates = 0
        self.invalid = 0
        self.saved = 0
        self.done = threading.Event()
        self.failure: str | None = None
        self.receipts = bool(args.receipts)
        self.pending: dict[str, list[Receipt]] = {}  # receipts topic -> receipts not yet sent
        self.pending_lock = threading.Lock()
        self.store_fd: int | None = None
        if args.store:
            self._load_store(Path(args.store))
            self.store_fd = os.open(args.store, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _load_store(self, path: Path) -> None:
        """The keys of the events stored by an earlier run, so none is stored twice."""
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                event = json.loads(line)
                self.seen[(event["event_id"], event["phase"], event["ts"])] = None
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash: its event was not receipted, so it comes again

    def take_receipts(self) -> list[tuple[str, list[Receipt]]]:
        with self.pending_lock:
            out = list(self.pending.items())
            self.pending.clear()
        return out

    def on_message(self, topic: str, payload: bytes) -> None:
        levels = topic.split("/")
        if len(levels) == 6 and levels[4] == "snapshots":
            self._snapshot(levels[5], payload)
        elif len(levels) == 7 and levels[4] == "snapshots" and levels[6] == "owner":
            self._owner_crop(levels[5], payload)
        elif len(levels) >= 7 and levels[4] == "clips":
            self._clip_chunk(levels[5], levels[6], payload)
        elif len(levels) >= 5 and levels[4] == "events":
            self._event(topic, payload)
        elif len(levels) >= 5 and levels[-1] == "status" and not self.json:
            self._status(levels, payload)

    def _event(self, topic: str, payload: bytes) -> None:
        try:
            event = json.loads(payload)
        except ValueError as err:
            self._invalid(topic, f"not JSON: {err}")
            return
        errors = validate("event", event)
        if errors:
            self._invalid(topic, errors[0])
            return
        key = (event["event_id"], event["phase"], event["ts"])
        if key in self.seen:
            self.duplicates += 1
            self._receipt(topic, event)  # stored before: the box may not have had that receipt
            return
        self.seen[key] = None
        if len(self.seen) > _SEEN_MAX:
            self.seen.popitem(last=False)
        if self.store_fd is not None:
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
            os.write(self.store_fd, line.encode("utf-8"))
            os.fsync(self.store_fd)
        self._receipt(topic, event)
        self.events += 1
        if self.json:
            print(json.dumps(event, ensure_ascii=False, separators=(",", ":")), flush=True)
        else:
            print(event_line(event), flush=True)
        self._check_snapshot(event)
        if self.clips is not None:
            self._clip_done(self.assembler.add_event(event))
        if self.count is not None and self.events >= self.count:
            self.done.set()

    def _receipt(self, topic: str, event: dict[str, Any]) -> None:
        if not self.receipts:
            return
        levels = topic.split("/")
        where = device_receipts(self.prefix, levels[-5], levels[-4])
        with self.pending_lock:
            self.pending.setdefault(where, []).append(Receipt.of_event(event))

    def _invalid(self, topic: str, error: str) -> None:
        self.invalid += 1
        line = f"INVALID event on {topic}: {error}"
        if self.json:
            _err(line)
        else:
            print(line, flush=True)

    def _snapshot(self, event_id: str, payload: bytes) -> None:
        if self.snapshots is None:
            return
        name = _SAFE_NAME.sub("_", event_id) + ".jpg"
        path = self.snapshots / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, path)
        self.saved += 1
        self.snapshot_sha[event_id] = hashlib.sha256(payload).hexdigest()
        if len(self.snapshot_sha) > _SEEN_MAX:
            self.snapshot_sha.popitem(last=False)

    def _owner_crop(self, event_id: str, payload: bytes) -> None:
        if self.snapshots is None:
            return
        name = _SAFE_NAME.sub("_", event_id) + "-owner.jpg"
        path = self.snapshots / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, path)
        self.owner_crops += 1

    def _clip_chunk(self, event_id: str, index: str, payload: bytes) -> None:
        if self.clips is None or not index.isdigit():
            return
        self._clip_done(self.assembler.add_chunk(event_id, int(index), payload))

    def _clip_done(self, clip: Assembled | None) -> None:
        if clip is None or self.clips is None:
            return
        if not clip.ok:
            self.clips_bad += 1
            _err(f"clip of {clip.event_id} does not match the event's sha256 (damaged); not saved")
            return
        name = _SAFE_NAME.sub("_", clip.event_id) + ".mp4"
        path = self.clips / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_bytes(clip.data)
        os.replace(tmp, path)
        self.clips_saved += 1
        _err(f"clip {path} ({len(clip.data)} bytes, sha256 checked)")

    def _check_snapshot(self, event: dict[str, Any]) -> None:
        ref = event.get("snapshot")
        if self.snapshots is None or not ref:
            return
        got = self.snapshot_sha.get(event["event_id"])
        if got is not None and got != ref["sha256"]:
            _err(f"snapshot of {event['event_id']} does not match the event's sha256 (stale or damaged)")

    def _status(self, levels: list[str], payload: bytes) -> None:
        try:
            state = json.loads(payload)
        except ValueError:
            return
        if not isinstance(state, dict):
            return
        since = str(state.get("since", ""))
        clock = since[11:19] if len(since) >= 19 else "--:--:--"
        what = "status" if levels[4] == "status" else f"camera {levels[5]}"
        reason = f" ({state['reason']})" if state.get("reason") else ""
        print(f"{clock} {levels[2]}/{levels[3]} {what} {state.get('state')}{reason}", flush=True)


def run(args: argparse.Namespace) -> int:
    if not args.config and not args.url:
        _err("give --config CFG or --url URL")
        return 2
    try:
        s = _settings(args)
    except ConfigError as err:
        for problem in err.problems:
            _err(str(problem))
        return 1
    except ValueError as err:
        _err(str(err))
        return 1
    host, port, *_ = parse_broker_url(s.url)
    for folder in (args.snapshots, args.clips):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    listener = _Listener(args, s.topic_prefix)
    persistent = args.client_id is not None
    status_topic = platform_status_topic(s.topic_prefix)
    since = iso_utc()
    will = None
    if args.receipts:
        will = (
            status_topic,
            json.loads(platform_status("offline", receipts=True, since=since, name="listen")),
        )
    try:
        client = make_client(
            s, args.client_id or new_client_id("edge-agent-listen"), persistent=persistent, will=will
        )
    except ClientSetupError as err:
        _err(str(err))
        return 1
    base = f"{s.topic_prefix}/{API_VERSION}/+/+"
    subscriptions = [
        (all_devices_filter(s.topic_prefix), 1),
        (f"{base}/status", 1),
        (f"{base}/cameras/+/status", 1),
    ]
    if args.snapshots:
        subscriptions += [(f"{base}/snapshots/+", 1), (f"{base}/snapshots/+/owner", 1)]
    if listener.clips is not None:
        subscriptions.append((f"{base}/clips/+/+", 1))
    shown = redact(s.url)

    def on_connect(c: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            listener.failure = f"the broker {shown} refused the connection: {rc}"
            listener.done.set()
            return
        c.subscribe(subscriptions)
        if args.receipts:
            online = platform_status("online", receipts=True, since=since, name="listen")
            c.publish(status_topic, online, qos=1, retain=True)

    def on_subscribe(c: paho.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        if any(rc.is_failure for rc in rcs):
            listener.failure = f"the broker {shown} refused the subscription: {', '.join(map(str, rcs))}"
            listener.done.set()
            return
        _err(f"connected to {shown}, listening on {s.topic_prefix}/{API_VERSION}/+/+/…")

    def on_disconnect(c: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not listener.done.is_set():
            _err(f"disconnected from {shown} ({rc}); reconnecting")

    def on_message(c: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            listener.on_message(msg.topic, bytes(msg.payload))
        except OSError as err:
            listener.failure = f"cannot save a snapshot or clip: {err}"
            listener.done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.reconnect_delay_set(1, 30)
    try:
        client.connect(host, port, keepalive=30)
    except ssl.SSLError as err:
        _err(f"TLS handshake with {shown} failed: {err}")
        return 1
    except OSError as err:
        _err(f"cannot reach {shown}: {err.strerror or err}")
        return 1
    client.loop_start()
    began = time.monotonic()
    try:
        while not listener.done.is_set():
            if args.timeout is not None and time.monotonic() - began >= args.timeout:
                break
            listener.done.wait(0.1)
            _send_receipts(client, listener)
    except KeyboardInterrupt:
        pass
    finally:
        listener.done.set()
        _send_receipts(client, listener)
        if args.receipts:
            offline = platform_status("offline", receipts=True, since=since, name="listen")
            client.publish(status_topic, offline, qos=1, retain=True).wait_for_publish(2.0)
        client.disconnect()
        client.loop_stop()
    _err(
        f"{listener.events} events, {listener.duplicates} duplicates dropped, "
        f"{listener.invalid} invalid, {listener.saved} snapshots saved"
        + (f", {listener.clips_saved} clips saved" if listener.clips is not None else "")
        + (f", {listener.clips_bad} clips damaged" if listener.clips_bad else "")
    )
    if listener.failure is not None:
        _err(listener.failure)
        return 1
    if args.count is not None and listener.events < args.count:
        _err(f"only {listener.events} of {args.count} events before the timeout")
        return 1
    return 0


def _send_receipts(client: paho.Client, listener: _Listener) -> None:
    """The receipts of what was stored since the last call, batched per device."""
    for topic, receipts in listener.take_receipts():
        for payload in receipt_payloads(receipts):
            client.publish(topic, payload, qos=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-agent listen", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
