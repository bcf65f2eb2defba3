"""Remote operations: the signed command, the box's result, and the Ed25519 keys.

The town signs every command with its private key; a box holds only the public key and
runs nothing whose signature, target, expiry or id does not check out (PRODUCT.md,
"Remote operations"). Both ends build the signed bytes here, so they cannot disagree:
the command object without `signature`, as JSON with sorted keys, no spaces, UTF-8.
Arguments hold only strings, integers, booleans, null, lists and objects: floats have no
one canonical text across languages, so they are refused rather than signed ambiguously.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.contract.schemas import validate
from edge_agent.core.files import write_private
from edge_agent.core.types import iso_utc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# `cryptography` is imported where a key is used: a box with remote operations off never maps
# its libraries (about 8 MB of RSS).

COMMAND_SCHEMA = "eagleeye.command/1"
RESULT_SCHEMA = "eagleeye.command-result/1"
ACTIONS = ("ping", "config-get", "config-set", "snapshot", "model-update")
STATES = ("applied", "refused", "rolled_back")
MAX_TTL_S = 7 * 86400  # a box remembers seen ids until they expire: the expiry must be near
DEFAULT_TTL_S = 3600.0
MAX_COMMAND_BYTES = 2 * 1024 * 1024  # a config file is at most 1 MB (core/yaml_load.py)
CLOCK_SKEW_S = 300.0  # a command "issued" further ahead than this says a clock is wrong


class CommandError(ValueError):
    """A command or result that cannot be taken; the message says why, in one line."""


class KeyFileError(ValueError):
    """A key file that cannot be read or written; the message names it."""


def parse_ts(text: str) -> float:
    """RFC 3339 UTC (`2026-11-26T08:15:02.400Z`) -> seconds since the epoch."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise CommandError(f"not an RFC 3339 time: {text[:40]!r}") from err
    if dt.tzinfo is None:
        raise CommandError(f"a time without a zone: {text[:40]!r}")
    return dt.astimezone(timezone.utc).timestamp()


def _no_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise CommandError(f"{where}: numbers in command arguments must be integers (floats are not signed)")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_floats(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_floats(v, f"{where}[{i}]")


def canonical_bytes(unsigned: dict[str, Any]) -> bytes:
    """The bytes that are signed: the command without `signature`, keys sorted, no spaces, UTF-8."""
    body = {k: v for k, v in unsigned.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Command:
    """`eagleeye.command/1`: what the town asks one box to do."""

    id: str
    site: str
    device: str
    action: str
    args: dict[str, Any]
    issued_at: str
    expires_at: str
    signature: str = ""

    def unsigned(self) -> dict[str, Any]:
        return {
            "schema": COMMAND_SCHEMA,
            "id": self.id,
            "site": self.site,
            "device": self.device,
            "action": self.action,
            "args": self.args,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned(), "signature": self.signature}

    def payload(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def signed_with(self, key: Ed25519PrivateKey) -> Command:
        sig = key.sign(canonical_bytes(self.unsigned()))
        return Command(**{**self.__dict__, "signature": base64.b64encode(sig).decode("ascii")})

    def verify(self, key: Ed25519PublicKey) -> None:
        """CommandError unless `signature` is the town's over this very command."""
        from cryptography.exceptions import InvalidSignature

        if not self.signature:
            raise CommandError("unsigned command")
        try:
            sig = base64.b64decode(self.signature, validate=True)
            key.verify(sig, canonical_bytes(self.unsigned()))
        except (InvalidSignature, binascii.Error, ValueError) as err:
            raise CommandError("bad signature: not signed by this box's platform key") from err

    def check_time(self, now: float) -> None:
        """CommandError when expired, issued in the future, or valid for longer than MAX_TTL_S."""
        issued, expires = parse_ts(self.issued_at), parse_ts(self.expires_at)
        if expires <= issued:
            raise CommandError("expires_at is not after issued_at")
        if expires - issued > MAX_TTL_S:
            raise CommandError(f"valid for more than {MAX_TTL_S // 86400} days")
        if now >= expires:
            raise CommandError(f"expired at {self.expires_at} (box time {iso_utc(now)})")
        if issued - now > CLOCK_SKEW_S:
            raise CommandError(
                f"issued at {self.issued_at}, ahead of the box's clock ({iso_utc(now)}): check both clocks"
            )

    @property
    def expires_ts(self) -> float:
        return parse_ts(self.expires_at)


def new_command(
    site: str, device: str, action: str, args: dict[str, Any] | None = None, ttl_s: float = DEFAULT_TTL_S,
    now: float | None = None,
) -> Command:  # fmt: skip
    """An unsigned command with a fresh id, issued now and expiring `ttl_s` later."""
    if action not in ACTIONS:
        raise CommandError(f"unknown action {action!r}; expected one of: {', '.join(ACTIONS)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise CommandError(f"ttl must be between 1 s and {MAX_TTL_S} s, got {ttl_s}")
    args = dict(args or {})
    _no_floats(args, "args")
    t = time.time() if now is None else now
    return Command(uuid.uuid4().hex, site, device, action, args, iso_utc(t), iso_utc(t + ttl_s))


def _payload_dict(payload: bytes, max_bytes: int, what: str) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise CommandError(f"{what} of {len(payload)} bytes, more than {max_bytes}")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise CommandError(f"{what} is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise CommandError(f"{what} is not a JSON object")
    return data


def parse_command(payload: bytes) -> Command:
    """A command from its MQTT payload, checked against `mqtt/command.schema.json` (not yet its signature)."""
    data = _payload_dict(payload, MAX_COMMAND_BYTES, "command")
    problems = validate("command", data)
    if problems:
        raise CommandError("not an eagleeye.command/1: " + "; ".join(problems[:3]))
    _no_floats(data["args"], "args")
    return Command(
        id=data["id"],
        site=data["site"],
        device=data["device"],
        action=data["action"],
        args=data["args"],
        issued_at=data["issued_at"],
        expires_at=data["expires_at"],
        signature=data["signature"],
    )


@dataclass(frozen=True)
class CommandResult:
    """`eagleeye.command-result/1`: the box's answer to one command."""

    id: str
    action: str
    site: str
    device: str
    state: str  # applied / refused / rolled_back
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: str = field(default_factory=iso_utc)

    @property
    def ok(self) -> bool:
        return self.state == "applied"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": RESULT_SCHEMA,
            "id": self.id,
            "action": self.action,
            "site": self.site,
            "device": self.device,
            "ok": self.ok,
            "state": self.state,
            "message": self.message,
            "data": self.data,
            "ts": self.ts,
        }

    def payload(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_result(payload: bytes) -> CommandResult:
    data = _payload_dict(payload, 16 * 1024 * 1024, "result")
    problems = validate("command-result", data)
    if problems:
        raise CommandError("not an eagleeye.command-result/1: " + "; ".join(problems[:3]))
    return CommandResult(
        data["id"], data["action"], data["site"], data["device"], data["state"], data["message"],
        data["data"], data["ts"],
    )  # fmt: skip


# --- keys ------------------------------------------------------------------------


def generate_keys(private_file: str | os.PathLike[str], public_file: str | os.PathLike[str]) -> str:
    """A new Ed25519 pair as PEM files (the private one 0600); never overwrites. Returns the public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(private_file), Path(public_file)
    for p in (private_path, public_path):
        if p.exists():
            raise KeyFileError(f"{p} exists; remove it first (a new key locks out every box until updated)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        write_private(private_path, private_pem, 0o600)
        write_private(public_path, public_pem, 0o644)
    except OSError as err:
        raise KeyFileError(f"cannot write {err.filename or private_path}: {err.strerror or err}") from err
    return public_pem.decode("ascii")


def _read_key(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise KeyFileError(f"cannot read the {what} {path}: {err.strerror or err}") from err


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise KeyFileError(f"{path} is not a PEM private key without a passphrase") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key (make one with `edge-agent keys generate`)")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise KeyFileError(f"{path} is not a PEM public key") from err
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 key (make one with `edge-agent keys generate`)")
    return key
