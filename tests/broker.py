"""A real Mosquitto for integration tests, plus the subscriber and events the tests use.

`Mosquitto` runs `/usr/sbin/mosquitto` as a subprocess on a free loopback port
with a config written into the test's tmp_path; `stop()` (SIGTERM, the broker
saves its persistence file), `kill()` (SIGKILL) and `start()` again keep the
port. `Subscriber` plays the platform: a paho client that records every
message. `make_event` builds events directly, without the pipeline.

Also imported by `bench/bench_mqtt.py` and `tests/helpers/publisher_proc.py`
so nothing here may depend on pytest except the fixtures at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge_agent.core.types import Event, EventObject, SnapshotRef

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """Certificates made by `make_certificates` (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, via openssl."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edge-agent test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "localhost"), ("client", "edge-01")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")  # fmt: skip
        extra = ["-extfile", "server.ext"] if name == "server" else []
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-out", f"{name}.crt", *extra)  # fmt: skip
    return TlsFiles(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file (mosquitto_passwd -b), readable by root only."""
    first = True
    for user, password in users.items():
        args = ["mosquitto_passwd", "-b", *(["-c"] if first else []), str(path), user, password]
        subprocess.run(args, check=True, capture_output=True)
        first = False
    path.chmod(0o600)
    return path


class Mosquitto:
    """One broker process; `url` is stable across stop/kill/start."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: TlsFiles | None = None,
        require_certificate: bool = False,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        extra_conf: str = "",
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        self.conf_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if password_file else 'true'}",
            "persistence true",
            f"persistence_location {workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto` and cannot read root-only files
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}"]
            lines.append(f"require_certificate {'true' if require_certificate else 'false'}")
        if password_file is not None:
            lines.append(f"password_file {password_file}")
        if acl_file is not None:
            lines.append(f"acl_file {acl_file}")
        self.conf_path.write_text("\n".join(lines) + "\n" + extra_conf)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> Mosquitto:
        if self.running:
            return self
        out = (self.workdir / "mosquitto.out").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)], stdout=out, stderr=out)
        out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM: a clean broker shutdown (it writes its persistence file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    def log(self) -> str:
        parts = []
        for p in (self.log_path, self.workdir / "mosquitto.out"):
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """The platform side: records every message on `topics`.

    With `client_id` set the session is persistent (clean_session false), so
    messages published while this subscriber is disconnected (broker restart)
    are queued for it by the broker.
    """

    port: int
    topics: list[str]
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    tls: TlsFiles | None = None
    protocol: str = "3.1.1"
    messages: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._started = False
        self.connects = 0  # more than one: the subscriber lost its connection and came back
        persistent = self.client_id is not None
        v5 = self.protocol == "5"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id or "",
            clean_session=None if v5 else not persistent,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        )
        if self.username:
            self.client.username_pw_set(self.username, self.password)
        if self.tls is not None:
            self.client.tls_set(
                ca_certs=str(self.tls.ca),
                certfile=str(self.tls.client_cert),
                keyfile=str(self.tls.client_key),
            )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self, timeout_s: float = 10.0) -> Subscriber:
        """Connect and wait for the SUBACK; a second call (after `with`) does nothing.

        Connecting again would drop the live connection and, without a persistent
        session, whatever the broker had for it in flight.
        """
        if self._started:
            return self
        self._started = True
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            raise TimeoutError("subscriber: no SUBACK")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._started = False

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            self.connects += 1
            client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))
            self._cond.notify_all()

    def snapshot(self) -> list[Message]:
        with self._cond:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout_s: float) -> list[Message]:
        """Wait until predicate(messages) holds; returns the messages (raises on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"condition not met after {timeout_s} s ({len(self.messages)} messages)"
                    )
                self._cond.wait(min(remaining, 0.2))
            return list(self.messages)

    def events(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.snapshot() if "/events/" in m.topic]

    def wait_events(self, unique: int, timeout_s: float) -> list[dict[str, Any]]:
        """Wait for `unique` distinct (event_id, phase, ts) keys; returns all events received."""
        self.wait_for(lambda msgs: len(dedup(_events_of(msgs))) >= unique, timeout_s)
        return self.events()


def _events_of(msgs: list[Message]) -> list[dict[str, Any]]:
    return [m.json() for m in msgs if "/events/" in m.topic]


def dedup(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a platform keeps: the first copy of each (event_id, phase, ts), in arrival order."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for e in events:
        key = (e["event_id"], e["phase"], e["ts"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def assert_order_per_camera(events: list[dict[str, Any]]) -> None:
    """Sequence numbers (details.seq) rise strictly per camera."""
    last: dict[str, int] = {}
    for e in events:
        seq = int(e["details"]["seq"])
        cam = e["camera"]
        assert seq > last.get(cam, -1), f"camera {cam}: seq {seq} after {last.get(cam)}"
        last[cam] = seq


def fake_jpeg(seq: int, size: int = 2000) -> bytes:
    body = hashlib.sha256(str(seq).encode()).digest() * (size // 32 + 1)
    return b"\xff\xd8\xff\xe0" + body[:size] + b"\xff\xd9"


def make_event(
    seq: int,
    *,
    camera: str = "cam-a",
    site: str = "laohu",
    device: str = "edge-01",
    prefix: str = "eagleeye",
    severity: str = "warning",
    phase: str = "start",
    snapshot: bytes | None = None,
) -> Event:
    """An event numbered `seq` (in details.seq and the event id); with `snapshot`, its reference."""
    event_id = f"{device}-{camera}-{seq:06d}"
    ref = None
    if snapshot is not None:
        ref = SnapshotRef(
            topic=f"{prefix}/v1/{site}/{device}/snapshots/{event_id}",
            sha256=hashlib.sha256(snapshot).hexdigest(),
            width=1280,
            height=720,
        )
    second = seq % 60
    return Event(
        event_id=event_id,
        phase=phase,
        site=site,
        device=device,
        camera=camera,
        rule="dumping",
        kind="left_object",
        severity=severity,
        zone="dump-corner",
        label="suitcase",
        score=0.71,
        objects=(EventObject(17, "suitcase", 0.71, (0.12, 0.61, 0.19, 0.74)),),
        started_at=f"2026-11-26T08:15:{second:02d}.400Z",
        ts=f"2026-11-26T08:15:{second:02d}.400Z",
        media_s=float(seq),
        duration_s=30.0,
        snapshot=ref,
        details={"seq": seq},
    )


def client_tls_context(tls: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    ctx.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    return ctx


# --- pytest fixtures ----------------------------------------------------------------

try:
    import pytest
except ImportError:  # imported by the benchmark, which needs no fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
        """An anonymous broker on a free loopback port, killed at the end of the test."""
        broker = Mosquitto(tmp_path / "broker")
        broker.start()
        try:
            yield broker
        finally:
            broker.kill()

    @pytest.fixture
    def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
        """Make brokers with their own options (TLS, passwords, ACL); all killed at the end."""
        made: list[Mosquitto] = []

        def make(**kwargs: Any) -> Mosquitto:
            broker = Mosquitto(tmp_path / f"broker{len(made)}", **kwargs)
            made.append(broker)
            return broker

        try:
            yield make
        finally:
            for broker in made:
                broker.kill()
