"""`edge-agent console ...`: the command line of the town's application.

`edge_agent.main` hands the arguments here when the first one is a console command, so the
box's command line never imports this package.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from edge_agent import __version__
from edge_agent.core.logs import FORMATS, setup_logging

__all__ = ["build_parser", "main"]


def add_console_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="CONSOLE.yaml", help="the console's config file")
    parser.add_argument("--migrate-only", action="store_true", help="apply the database migrations and exit")
    parser.add_argument(
        "--no-mqtt",
        action="store_true",
        help="serve the stored alerts read-only: no subscription, no purge, every change refused",
    )
    parser.add_argument(
        "--retire",
        action="store_true",
        help="take this instance out for good: store what the broker holds for it, then delete its session",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Eagle Eye town console")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="INFO")
    parser.add_argument("--log-format", choices=FORMATS, default="auto")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "console", help="the town console: every box's alerts in a database, a web page and a JSON API"
    )
    add_console_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.log_level != "DEBUG":
        # Alembic announces each of its plugins and uvicorn its start-up at INFO; the console says
        # what it migrated and where it listens itself. Their warnings and errors still show.
        for name in ("alembic", "uvicorn"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from edge_agent.console import app

    try:
        return int(app.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
