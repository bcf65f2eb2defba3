"""Remote operations from the console: send a signed command to one box, keep it and its answer.

A command is stored (`commands`, state `sent`) before it goes out, then sent on a worker
thread through `fleet.send_command`, which blocks until the box answers (a config-set
answers only after the box's confirmation window). The answer replaces the state
(`applied`, `refused`, `rolled_back`), no answer in time makes it `timeout`, and a command
that could not be sent at all (broker, login, ACL) `failed`. A snapshot's JPEG is kept in
its own column, the rest of the answer as JSON. A config's passwords are never stored: the
box sends them as `***`, and what a duty officer pushes is stored with its passwords hidden.

A box's page (`device_view`) reads its status and last stats as the health board does, its
inventory (the newest applied `ping`), its config (the newest applied `config-get`) and the
history of its commands, newest first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_agent.console import queries
from edge_agent.console import tables as t
from edge_agent.console.config import ConsoleConfig
from edge_agent.console.db import Database
from edge_agent.console.fleet import FleetConfig, FleetError, Target, send_command
from edge_agent.console.store import write_command_result
from edge_agent.contract.commands import Command, CommandError, CommandResult, load_private_key, new_command
from edge_agent.core.config import redact
from edge_agent.core.config_secrets import redact_config_text
from edge_agent.core.types import iso_utc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

logger = logging.getLogger(__name__)

SLOW_ACTIONS = ("config-set", "model-update")  # answered after the box's confirmation window
SLOW_EXTRA_S = 120.0
SEND_GRACE_S = 60.0  # connecting, subscribing and publishing before the wait for the answer
HISTORY_LIMIT = 100
# what each action takes: required argument names, then optional ones
ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ping": ((), ()),
    "config-get": ((), ()),
    "config-set": (("config",), ("base_sha256",)),
    "snapshot": (("camera",), ()),
    "model-update": (("name",), ()),
}


class CommandRefused(Exception):
    """A command the console will not send: `status` is the HTTP answer (404, 422, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Fleet:
    """The console's remote operations: its broker login and the town's signing key."""

    cfg: ConsoleConfig
    fleet: FleetConfig
    key: Ed25519PrivateKey

    @classmethod
    def load(cls, cfg: ConsoleConfig) -> Fleet | None:
        """None without `fleet:`; KeyFileError (one line, naming the file) when the key cannot be read."""
        if cfg.fleet is None:
            return None
        return cls(cfg, cfg.fleet, load_private_key(cfg.fleet.private_key_file))

    def timeout_s(self, action: str) -> float:
        return self.fleet.timeout_s + (SLOW_EXTRA_S if action in SLOW_ACTIONS else 0.0)

    def ttl_s(self, action: str) -> float:
        # a look at a box (ping, config, snapshot) is worth nothing an hour later: it expires
        # with the wait; a change waits at the broker for a box that is away
        return self.fleet.ttl_s if action in SLOW_ACTIONS else max(1.0, self.timeout_s(action))


def check_args(action: str, args: dict[str, Any]) -> dict[str, str]:
    """The arguments `action` takes, each a non-empty string; CommandRefused(422) naming the problem."""
    if action not in ARGS:
        raise CommandRefused(422, f"action: one of {', '.join(ARGS)}, got {action!r}")
    required, optional = ARGS[action]
    unknown = sorted(set(args) - set(required) - set(optional))
    if unknown:
        raise CommandRefused(422, f"args.{unknown[0]}: {action} takes no such argument")
    for name in required:
        if name not in args:
            raise CommandRefused(422, f"args.{name}: {action} needs it")
    for name, value in args.items():
        if not isinstance(value, str) or not value.strip():
            raise CommandRefused(422, f"args.{name}: a non-empty string")
    return dict(args)


def _stored_args(action: str, args: dict[str, str]) -> str:
    shown = dict(args)
    if "config" in shown:
        shown["config"] = redact_config_text(shown["config"])  # a password typed in stays out
    return json.dumps(shown, ensure_ascii=False)


def send(
    fleet: Fleet, db: Database, site: str, device: str, action: str, args: dict[str, Any], who: str,
    on_done: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Store and send one command; answers the stored row (state `sent`). The answer comes later."""
    args = check_args(action, args)
    try:
        target = Target(fleet.cfg.mqtt.topic_prefix, site, device)
        target.topics  # noqa: B018  # an id that cannot be a topic level raises here
        cmd = new_command(site, device, action, args, fleet.ttl_s(action)).signed_with(fleet.key)
    except (CommandError, ValueError) as err:
        raise CommandRefused(422, str(err)) from err
    now = time.time()
    timeout = fleet.timeout_s(action)
    with db.transaction() as conn:
        known = conn.execute(
            sa.select(t.devices.c.site).where(t.devices.c.site == site, t.devices.c.device == device)
        ).first()
        if known is None:
            raise CommandRefused(404, f"no device {site}/{device} has been heard from")
        conn.execute(
            sa.insert(t.commands).values(
                id=cmd.id, site=site, device=device, action=action, args=_stored_args(action, args),
                who=who, issued_at=now, expires_at=cmd.expires_ts, deadline=now + timeout + SEND_GRACE_S,
                state="sent",
            )
        )  # fmt: skip
        row = command_row(conn, cmd.id)  # as stored, before the sender can change it
    assert row is not None
    logger.info("%s sent %s (%s) to %s/%s", who, cmd.id, action, site, device)
    worker = threading.Thread(
        target=_run, args=(fleet, db, target, cmd, timeout, on_done), name=f"cmd-{cmd.id[:8]}", daemon=True
    )
    worker.start()
    return row


def _run(fleet: Fleet, db: Database, target: Target, cmd: Command, timeout: float, on_done: Any) -> None:
    try:
        _, result = send_command(
            fleet.cfg.mqtt, fleet.key, target, cmd.action, command=cmd, timeout_s=timeout
        )
    except (FleetError, CommandError) as err:
        _finish(db, cmd.id, "failed", f"not sent: {err}")
    except Exception:
        logger.exception("command %s: sending failed", cmd.id)
        _finish(db, cmd.id, "failed", "not sent: internal error (see the console's log)")
    else:
        if result is None:
            message = (f"no answer within {timeout:g} s; the box runs it if it comes back before "
                       f"{cmd.expires_at}")  # fmt: skip
            _finish(db, cmd.id, "timeout", message)
        else:
            store_result(db, result)
    if on_done is not None:
        on_done()


def _finish(db: Database, command_id: str, state: str, message: str) -> None:
    with db.transaction() as conn:
        conn.execute(
            sa.update(t.commands)
            .where(t.commands.c.id == command_id, t.commands.c.state == "sent")
            .values(state=state, message=redact(message), answered_at=time.time())
        )
    logger.info("command %s: %s", command_id, state)


def store_result(db: Database, result: CommandResult) -> None:
    """The box's answer to a command sent from here."""
    with db.transaction() as conn:
        write_command_result(conn, result, time.time())
    logger.info("command %s (%s): %s", result.id, result.action, result.state)


# --- reading ------------------------------------------------------------------------------


def _expire(conn: Connection, site: str, device: str, now: float) -> None:
    """`sent` past its deadline: its worker is gone (the console stopped while it waited)."""
    conn.execute(
        sa.update(t.commands)
        .where(
            t.commands.c.site == site,
            t.commands.c.device == device,
            t.commands.c.state == "sent",
            t.commands.c.deadline < now,
        )
        .values(state="timeout", message="no answer recorded (the console stopped while waiting)",
                answered_at=now)
    )  # fmt: skip


def _row(r: Any, full: bool) -> dict[str, Any]:
    args = json.loads(r.args)
    data = json.loads(r.data) if r.data else None
    if not full:
        if "config" in args:
            args = {**args, "config": f"{len(args['config'].encode())} bytes"}
        if data and "text" in data:
            data = {k: v for k, v in data.items() if k != "text"}
    return {
        "id": r.id, "site": r.site, "device": r.device, "action": r.action, "args": args, "who": r.who,
        "issued_at": iso_utc(r.issued_at), "state": r.state, "message": r.message, "data": data,
        "answered_at": iso_utc(r.answered_at) if r.answered_at is not None else None,
        "snapshot": bool(r.has_jpeg),
    }  # fmt: skip


def _columns() -> list[Any]:
    c = t.commands.c
    return [c.id, c.site, c.device, c.action, c.args, c.who, c.issued_at, c.state, c.message, c.data,
            c.answered_at, (c.jpeg.is_not(None)).label("has_jpeg")]  # fmt: skip


def command_row(conn: Connection, command_id: str, full: bool = True) -> dict[str, Any] | None:
    r = conn.execute(sa.select(*_columns()).where(t.commands.c.id == command_id)).first()
    return None if r is None else _row(r, full)


def _latest(conn: Connection, site: str, device: str, action: str) -> dict[str, Any] | None:
    c = t.commands.c
    r = conn.execute(
        sa.select(*_columns())
        .where(c.site == site, c.device == device, c.action == action, c.state == "applied")
        .order_by(c.answered_at.desc())
        .limit(1)
    ).first()
    return None if r is None else _row(r, True)


def device_view(
    conn: Connection, site: str, device: str, stalled_after_s: float, expire: bool = True
) -> dict[str, Any] | None:
    """The box's page: status, last stats, inventory, config and command history; None if unknown.

    `expire`: first mark the box's commands still `sent` past their deadline as `timeout` (not on
    a read-only console, which changes nothing)."""
    now = time.time()
    health = queries.health(conn, stalled_after_s, now)["devices"]
    status = next((d for d in health if d["site"] == site and d["device"] == device), None)
    if status is None:
        return None
    if expire:
        _expire(conn, site, device, now)
    s = conn.execute(
        sa.select(t.stats.c.payload, t.stats.c.ts)
        .where(t.stats.c.site == site, t.stats.c.device == device)
        .order_by(t.stats.c.id.desc())
        .limit(1)
    ).first()
    c = t.commands.c
    rows = conn.execute(
        sa.select(*_columns())
        .where(c.site == site, c.device == device)
        .order_by(c.issued_at.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    return {
        "status": status,
        "stats": json.loads(s.payload) if s is not None else None,
        "inventory": _latest(conn, site, device, "ping"),
        "config": _latest(conn, site, device, "config-get"),
        "history": [_row(r, False) for r in rows],
    }


def snapshot_jpeg(conn: Connection, site: str, device: str, command_id: str) -> bytes | None:
    c = t.commands.c
    jpeg = conn.execute(
        sa.select(c.jpeg).where(c.id == command_id, c.site == site, c.device == device)
    ).scalar()
    return bytes(jpeg) if jpeg is not None else None
