"""The one place a paho client is set up: protocol, credentials, TLS and the Last Will.

The box's publisher (a fresh client at every connect), doctor's broker probe, `edge-agent
listen` and the town console all take their client from `make_client`, so a fix to password or certificate
handling is made once.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.core.config import redact
from edge_agent.core.types import iso_utc


class TlsSettings(Protocol):
    """What a client needs of `mqtt.tls`: the box's and the console's configs both have it."""

    @property
    def ca(self) -> str | None: ...
    @property
    def cert(self) -> str | None: ...
    @property
    def key(self) -> str | None: ...
    @property
    def insecure(self) -> bool: ...


class ClientSettings(Protocol):
    """What a client needs of `mqtt`: plain settings, whichever application's config holds them."""

    @property
    def url(self) -> str: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def password_file(self) -> str | None: ...
    @property
    def tls(self) -> TlsSettings | None: ...
    @property
    def protocol(self) -> Literal["3.1.1", "5"]: ...


class ClientSetupError(Exception):
    """A client that cannot be set up (unreadable password file, bad certificate); one line."""


def parse_broker_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """`mqtt://[user[:pass]@]host[:port]` or `mqtts://...` -> (host, port, tls, user, password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {redact(url)!r}")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as err:
        raise ValueError(f"bad port in MQTT URL {redact(url)!r}") from err
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, tls, user, password


def new_client_id(prefix: str) -> str:
    """A unique client id for throw-away connections (doctor, listen)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ssl_reason(err: BaseException) -> str:
    """One line for a TLS or certificate-file failure."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {err.verify_message}"
    if isinstance(err, ssl.SSLError):
        return str(err.reason or err)
    if isinstance(err, OSError):
        return f"{err.filename or ''}: {err.strerror or err}".lstrip(": ")
    return str(err)


def credentials(cfg: ClientSettings) -> tuple[str | None, str | None]:
    """User name and password: the config's, else the URL's; `password_file` wins, read now.

    Read at every connect so a fixed password is picked up without a restart.
    """
    _, _, _, url_user, url_password = parse_broker_url(cfg.url)
    username = cfg.username or url_user
    password = cfg.password or url_password
    if cfg.password_file:
        path = Path(cfg.password_file)
        try:
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise ClientSetupError(f"cannot read mqtt.password_file {path}: {err.strerror or err}") from err
    return username, password


def tls_context(tls: TlsSettings | None) -> ssl.SSLContext:
    """The TLS context of `mqtt.tls` (system CAs when no `ca` is given)."""
    try:
        ctx = ssl.create_default_context(cafile=tls.ca if tls else None)
        if tls is not None and tls.cert:
            ctx.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as err:
        raise ClientSetupError(f"TLS setup failed: {ssl_reason(err)}") from err
    if tls is not None and tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_client(
    cfg: ClientSettings,
    client_id: str,
    *,
    persistent: bool = False,
    will: tuple[str, dict[str, Any]] | None = None,
    manual_ack: bool = False,
) -> paho.Client:
    """A paho client for `cfg`, not yet connected; raises ClientSetupError.

    `persistent` keeps the broker-side session (MQTT 3.1.1 clean_session off) so the broker
    queues QoS 1 messages while the client is away; `will` is (topic, payload) of a retained
    QoS 1 Last Will; `manual_ack` leaves the PUBACK of received messages to the caller
    (the town console acknowledges only what it has committed).
    """
    v5 = cfg.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )
    username, password = credentials(cfg)
    if username is not None or password is not None:
        client.username_pw_set(username, password)
    if will is not None:
        client.will_set(will[0], json.dumps(will[1]), qos=1, retain=True)
    _, _, tls, _, _ = parse_broker_url(cfg.url)
    if tls:
        client.tls_set_context(tls_context(cfg.tls))
        if cfg.tls is not None and cfg.tls.insecure:
            client.tls_insecure_set(True)
    return client


def probe_broker(cfg: ClientSettings, topic: str, timeout_s: float = 10.0) -> tuple[bool, str]:
    """Installer check: connect, publish one QoS 1 message on `topic`, wait for its PUBACK.

    A throw-away client with no Last Will, so the device's status topic is never
    touched by a check run beside a live agent. Returns (ok, one line).
    """
    _, _, tls, _, _ = parse_broker_url(cfg.url)
    shown = redact(cfg.url)
    try:
        client = make_client(cfg, new_client_id("edge-agent-doctor"))
    except ClientSetupError as err:
        return False, str(err)
    answer: dict[str, Any] = {}
    answered = threading.Event()

    def on_connect(c: paho.Client, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
        answer["rc"] = rc
        answered.set()

    def on_disconnect(c: paho.Client, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
        answer.setdefault("closed", rc)
        answered.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    host, port, _, _, _ = parse_broker_url(cfg.url)
    t0 = time.monotonic()
    try:
        client.connect(host, port, keepalive=max(10, int(timeout_s)))
    except ssl.SSLError as err:
        return False, f"TLS handshake with {shown} failed: {ssl_reason(err)}"
    except OSError as err:
        return False, f"cannot reach {shown}: {err.strerror or err}"
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            return False, f"{shown} did not answer within {timeout_s:g} s"
        rc = answer.get("rc")
        if rc is None:
            hint = " (a client certificate may be needed: mqtt.tls.cert/key)" if tls else ""
            return False, f"{shown} closed the connection ({answer.get('closed')}){hint}"
        if rc.is_failure:
            hint = " (check mqtt.username and the password)" if rc.value in (4, 5, 0x86, 0x87) else ""
            return False, f"{shown} refused the connection: {rc}{hint}"
        connect_ms = (time.monotonic() - t0) * 1000
        payload = json.dumps({"check": "doctor", "ts": iso_utc()})
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            return False, f"connected, but the test message got no PUBACK within {timeout_s:g} s"
        total_ms = (time.monotonic() - t0) * 1000
        tls_text = "TLS, " if tls else ""
        return (
            True,
            f"{tls_text}connected in {connect_ms:.0f} ms, test message acknowledged ({total_ms:.0f} ms)",
        )
    finally:
        client.disconnect()
        client.loop_stop()
