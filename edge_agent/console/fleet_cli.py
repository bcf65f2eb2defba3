"""`edge-agent command` and `edge-agent keys generate`: remote operations from a shell.

`edge_agent.main` hands the arguments here for these two words. Exit codes (PRODUCT.md):
0 the box applied the command, 1 it refused or rolled back (or the command could not be
sent: broker, key or config problem), 2 a usage error, 3 no result came in time.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from edge_agent import __version__
from edge_agent.console.config import MqttConfig
from edge_agent.console.fleet import FleetConfig, FleetError, parse_device, send_command
from edge_agent.contract.commands import (
    MAX_TTL_S,
    CommandError,
    CommandResult,
    KeyFileError,
    generate_keys,
    load_private_key,
)
from edge_agent.core.config import ConfigError
from edge_agent.core.config_load import parse_config_with, read_config_text
from edge_agent.core.logs import FORMATS, setup_logging

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_NO_ANSWER = 0, 1, 2, 3
SLOW_ACTIONS_EXTRA_S = 120.0  # config-set and model-update answer after the box's confirm_s


class CommandConsoleConfig(BaseModel):
    """What `edge-agent command` needs of the console's config: the broker and the key.

    The rest of the file (database, web) is the console's and is checked by it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal[1]
    mqtt: MqttConfig
    fleet: FleetConfig | None = None


def _err(message: str, code: int = EXIT_PROBLEM) -> int:
    print(f"edge-agent: {message}", file=sys.stderr)
    return code


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= MAX_TTL_S:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and {MAX_TTL_S}, got {text}")
    return value


def add_command_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="CONSOLE.yaml", help="the console's config file")
    p.add_argument("--device", required=True, metavar="SITE/DEVICE", help="the box, as site id/device id")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="seconds to wait for the result")
    p.add_argument("--ttl", type=_seconds, metavar="S", help="the command expires after this (box away)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    acts.add_parser("ping", help="versions, config hash, model, uptime, disk, cameras")
    a = acts.add_parser("config-get", help="the box's config file, passwords shown as ***")
    a.add_argument("-o", "--output", metavar="FILE", help="write the text here instead of printing it")
    a = acts.add_parser(
        "config-set", help="replace the box's config; rolled back if cameras do not come back"
    )
    a.add_argument("file", metavar="FILE", help="the new config.yaml")
    a = acts.add_parser("snapshot", help="a fresh frame of one camera with its zones drawn")
    a.add_argument("camera", metavar="CAMERA")
    a.add_argument("-o", "--output", required=True, metavar="FILE.jpg")
    a = acts.add_parser("model-update", help="switch to a model by its manifest (sha256 checked)")
    a.add_argument("name", metavar="NAME")


def add_keys_arguments(p: argparse.ArgumentParser) -> None:
    ksub = p.add_subparsers(dest="keys_cmd", required=True)
    g = ksub.add_parser("generate", help="the town's Ed25519 key pair for signing commands")
    g.add_argument("--private", required=True, metavar="FILE", help="private key (PEM, written 0600)")
    g.add_argument("--public", required=True, metavar="FILE", help="public key (PEM), for every box")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Eagle Eye remote operations")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="WARNING")
    parser.add_argument("--log-format", choices=FORMATS, default="auto")
    sub = parser.add_subparsers(dest="command", required=True)
    add_command_arguments(sub.add_parser("command", help="send a signed command to one box and wait"))
    add_keys_arguments(sub.add_parser("keys", help="the town's signing keys"))
    return parser


def _args_of(args: argparse.Namespace) -> dict[str, Any]:
    if args.action == "config-set":
        try:
            return {"config": read_config_text(args.file)}
        except ConfigError as err:
            raise ValueError(str(err)) from err
    if args.action == "snapshot":
        return {"camera": args.camera}
    if args.action == "model-update":
        return {"name": args.name}
    return {}


def _show(result: CommandResult, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
        return
    print(f"{result.site}/{result.device} {result.action}: {result.state}: {result.message}")
    data = dict(result.data)
    if args.action == "snapshot":
        data.pop("jpeg", None)
    if args.action == "config-get" and result.ok:
        text = data.pop("text", "")
        if not args.output:
            print(text, end="" if text.endswith("\n") else "\n")
            return
    if data:
        print(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


def run_command(args: argparse.Namespace) -> int:
    try:
        cfg = parse_config_with(CommandConsoleConfig, {}, read_config_text(args.config), source=args.config)
    except ConfigError as err:
        for p in err.problems:
            print(f"{args.config}: {p}", file=sys.stderr)
        return EXIT_PROBLEM
    if cfg.fleet is None:
        return _err(f"{args.config}: fleet.private_key_file: a private key is needed to sign commands "
                    "(make one with `edge-agent keys generate`)")  # fmt: skip
    try:
        target = parse_device(args.device, cfg.mqtt.topic_prefix)
        command_args = _args_of(args)
        key = load_private_key(cfg.fleet.private_key_file)
    except KeyFileError as err:
        return _err(str(err))
    except ValueError as err:
        return _err(str(err), EXIT_USAGE if str(err).startswith("--device") else EXIT_PROBLEM)
    timeout = args.timeout or cfg.fleet.timeout_s
    if args.timeout is None and args.action in ("config-set", "model-update"):
        timeout += SLOW_ACTIONS_EXTRA_S
    try:
        cmd, result = send_command(
            cfg.mqtt,
            key,
            target,
            args.action,
            command_args,
            ttl_s=args.ttl or cfg.fleet.ttl_s,
            timeout_s=timeout,
        )
    except (FleetError, CommandError) as err:
        return _err(str(err))
    if result is None:
        return _err(
            f"no answer from {args.device} within {timeout:g} s; command {cmd.id} stays valid until "
            f"{cmd.expires_at} and runs if the box comes back before then",
            EXIT_NO_ANSWER,
        )
    if args.action in ("snapshot", "config-get") and result.ok and args.output:
        out = Path(args.output)
        try:
            if args.action == "config-get":
                out.write_text(str(result.data["text"]), encoding="utf-8")
            else:
                out.write_bytes(base64.b64decode(result.data["jpeg"]))
        except (OSError, KeyError, ValueError) as err:
            return _err(f"cannot write {out}: {err}")
    _show(result, args)
    return EXIT_OK if result.ok else EXIT_PROBLEM


def run_keys(args: argparse.Namespace) -> int:
    try:
        generate_keys(args.private, args.public)
    except KeyFileError as err:
        return _err(str(err))
    print(f"private key: {args.private} (0600; keep it on the town's server, set fleet.private_key_file)")
    print(f"public key:  {args.public} (copy it to every box, set commands.public_key_file)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return run_keys(args) if args.command == "keys" else run_command(args)
    except KeyboardInterrupt:
        return 130
