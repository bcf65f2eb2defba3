"""`edge-agent`: the one command line of both applications.

The box's commands live in `tools/cli.py`; the town's (`console`, and the platform side of
remote operations) in `console/cli.py`. This module sits above both layers and only picks
one by the first argument, so an agent process never imports the console's web framework
or database drivers, and the box's layers never import `console`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# the commands the town's application answers; everything else is the box's
CONSOLE_COMMANDS = frozenset({"console", "command", "keys"})
# the platform side of remote operations (console/fleet_cli.py): no web framework, no database
FLEET_COMMANDS = frozenset({"command", "keys"})
# what the `console` extra installs (pyproject.toml): a box has none of it
CONSOLE_STACK = frozenset(
    {"fastapi", "starlette", "uvicorn", "sse_starlette", "sqlalchemy", "alembic", "psycopg"}
)
# options both command lines take before the command, with a value
_GLOBAL_WITH_VALUE = frozenset({"--log-level", "--log-format"})


def command_of(args: Sequence[str]) -> str | None:
    """The command word of `args`: the first one that is neither an option nor an option's value."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    word = command_of(args)
    if word in FLEET_COMMANDS:
        from edge_agent.console.fleet_cli import main as fleet_main

        return fleet_main(args)
    if word in CONSOLE_COMMANDS:
        from edge_agent.console.cli import main as console_main

        try:
            return console_main(args)
        except ModuleNotFoundError as err:
            if (err.name or "").split(".")[0] not in CONSOLE_STACK:
                raise
            # a box's install: the console's web stack and database drivers are an extra
            print(
                f"edge-agent {command_of(args)}: the town console needs its extra ({err.name} is not "
                "installed): pip install 'edge-agent[console]'",
                file=sys.stderr,
            )
            return 1
    from edge_agent.tools.cli import main as box_main

    return box_main(args)


if __name__ == "__main__":
    sys.exit(main())
