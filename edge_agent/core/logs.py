"""Log output for people, for journald and for log shippers (`--log-format`).

* `text`: `2026-12-02 08:15:32,400 WARNING edge_agent.app.agent: camera gate: offline (...)`,
  for a terminal.
* `journal`: `<4>edge_agent.app.agent: camera gate: offline (...)`. journald stamps every
  line itself, so no second timestamp; the `<N>` prefix is the syslog priority journald reads
  from a service's stdout/stderr (sd-daemon(3)), so `journalctl -p warning` works.
* `json`: one object a line, `{"ts", "level", "logger", "message"}` (plus `exc` with the
  traceback), for Loki, Vector, Fluent Bit and the like.

`auto` (the default) is `journal` when systemd started the process (`JOURNAL_STREAM` or
`INVOCATION_ID` in the environment), else `text`. Every format passes through the same
redaction: no URL password reaches a log line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone

from edge_agent.core.config import redact

FORMATS = ("auto", "text", "journal", "json")

# syslog priorities (sd-daemon(3)): the <N> journald reads at the start of a line
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class RedactingFilter(logging.Filter):
    """Last line of defence: no URL password reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


class JournalFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        # Each line of a multi-line message (a traceback) is its own journal entry: prefix every one.
        return "\n".join(prefix + line for line in redact(super().format(record)).splitlines())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


def under_systemd(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def resolve_format(fmt: str, env: Mapping[str, str] | None = None) -> str:
    if fmt == "auto":
        return "journal" if under_systemd(env) else "text"
    return fmt


def setup_logging(level: str, fmt: str = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    chosen = resolve_format(fmt)
    if chosen == "journal":
        handler.setFormatter(JournalFormatter())
    elif chosen == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
