"""The one definition of a legal id: what a site, device, camera, rule, zone or line may be named.

Ids become MQTT topic levels (`…/{site}/{device}/events/{camera}/{rule}`), parts of event ids
and file names, and fields of the event schema. So an id is 1 to 64 characters of ASCII letters,
digits, `_`, `.` and `-`, starting with a letter or digit: no `/` (a level separator), no `+` or
`#` (wildcards the broker refuses in a published topic), no spaces, no leading `.` or `-`.
`mqtt/event.schema.json` uses the same pattern (a test reads it) and `delivery/topics.py`
refuses any other level.
"""

from __future__ import annotations

import re

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ID_RE = re.compile(ID_PATTERN)
ID_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"


def id_problem(value: object) -> str | None:
    """Why `value` is not a legal id (in a user's words), or None when it is one."""
    if not isinstance(value, str):
        return f"expected an id ({ID_RULE})"
    if ID_RE.fullmatch(value):
        return None
    bad = sorted({c for c in value if not re.fullmatch(r"[A-Za-z0-9_.-]", c)})
    if not value:
        return f"an id cannot be empty ({ID_RULE})"
    if len(value) > 64:
        return f"an id has at most 64 characters, this one has {len(value)}"
    if bad:
        shown = " ".join(repr(c) for c in bad[:5])
        return f"an id cannot contain {shown} (ids go into MQTT topics: {ID_RULE})"
    return f"an id must start with a letter or digit ({ID_RULE})"


def topic_level_problem(level: str) -> str | None:
    """Why `level` cannot be one level of a topic the agent publishes on, or None."""
    if not level:
        return "an empty topic level (two '/' in a row, or one at an end)"
    if "+" in level or "#" in level:
        return "'+' and '#' are MQTT wildcards, not allowed in a published topic"
    if "\x00" in level:
        return "a NUL character is not allowed in a topic"
    return None
