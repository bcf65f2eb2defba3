"""Two things every command shares: the default config file and, on a terminal, progress bars."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

DEFAULT_CONFIG = "/etc/edge-agent/config.yaml"
# The commands that read the box's config; without --config they take the default.
CONFIG_COMMANDS = ("validate", "doctor", "run", "replay", "snapshot", "zones", "listen")


def default_config(env: Mapping[str, str] | None = None) -> str:
    """`$EDGE_AGENT_CONFIG`, else /etc/edge-agent/config.yaml (where deploy/install.sh puts it)."""
    return (os.environ if env is None else env).get("EDGE_AGENT_CONFIG") or DEFAULT_CONFIG


def apply_default_config(args: argparse.Namespace) -> str | None:
    """Fill in the default config for a command given none; a message when that file is missing."""
    given = (getattr(args, name, None) for name in ("config", "config_file", "url"))
    if args.command not in CONFIG_COMMANDS or any(given):
        return None
    args.config = default_config()
    if not os.path.exists(args.config):
        return f"no config file {args.config} (the default): pass --config FILE or set EDGE_AGENT_CONFIG"
    return None


def progress_bars(quiet: bool, stream: Any = None) -> Any:
    """A tqdm bar per video on a terminal (stderr), None when quiet or not a terminal (logs, pipes)."""
    stream = sys.stderr if stream is None else stream
    if quiet or not stream.isatty():
        return None
    from tqdm import tqdm

    def bar(path: str, total: int) -> Any:
        return tqdm(total=total or None, desc=os.path.basename(path), unit="frame", file=stream, leave=False)

    return bar
