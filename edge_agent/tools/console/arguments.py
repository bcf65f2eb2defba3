"""The arguments of `edge-agent console`, apart from the console itself.

Every command's parser is built on each start of `edge-agent`, `run` too; importing the
console (its database drivers among it) for that cost every agent process 14 MB.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="CONSOLE.yaml", help="the console's config file")
    parser.add_argument("--migrate-only", action="store_true", help="apply the database migrations and exit")
    parser.add_argument(
        "--no-mqtt", action="store_true", help="serve the stored alerts without subscribing (read-only)"
    )
    parser.add_argument(
        "--retire",
        action="store_true",
        help="take this instance out for good: store what the broker holds for it, then delete its session",
    )
