"""A config file's text without its secrets, and the secrets put back into an edited copy.

The town reads a box's config (`config-get`) to show and edit it, but no secret may leave the
box: every password in a URL becomes `***` (`rtsp://admin:***@cam/stream`, as `redact` does
in logs) and so does the value of every `password:` key (`mqtt.password`). The text is
otherwise untouched, line for line, so a diff against an edited copy shows only the edits.

When an edited copy comes back (`config-set`), each `***` is replaced by what the box's own
file has in the same place: a URL's password by the password of the URL with the same
scheme, user, host and path; a `password:` value by the file's `password:` value. A `***`
that has no counterpart (a new camera URL written with `***`) is an error naming the URL
with its password hidden: the town must write that password itself.
"""

from __future__ import annotations

import re

HIDDEN = "***"
# scheme://user[:password]@rest; the password runs to the last `@` before a space or quote
# (as in `urls.redact`), the rest (host, port, path) to the next space or quote.
_URL_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:'\"]*)(:[^\s'\"]*)?@([^\s'\"]*)")
# a `password:` key in block (`password: x`) or flow style (`{password: x, ...}`)
_KEY_RE = re.compile(
    r"(?m)((?:^|[{,\s])password[ \t]*:[ \t]*)"  # the key
    r"(\"[^\"\n]*\"|'[^'\n]*'|[^\s,}#'\"][^,}#\n]*?)"  # its value, quoted or plain
    r"(?=[ \t]*(?:[,}]|#|$))"
)
_HIDDEN_VALUES = (HIDDEN, f"'{HIDDEN}'", f'"{HIDDEN}"')


class SecretsError(ValueError):
    """A `***` in an edited config that the box cannot fill in; the message never holds a secret."""


def _url_key(m: re.Match[str]) -> tuple[str, str, str]:
    return m.group(1).lower(), m.group(2), m.group(4)


def redact_config_text(text: str) -> str:
    """`text` with every URL password and `password:` value shown as `***`."""
    text = _URL_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}:{HIDDEN}@{m.group(4)}", text)
    return _KEY_RE.sub(lambda m: f"{m.group(1)}'{HIDDEN}'", text)


def restore_config_secrets(edited: str, current: str) -> str:
    """`edited` with each `***` replaced by the secret `current` holds in the same place.

    SecretsError, naming every place that cannot be filled in (passwords hidden).
    """
    known: dict[tuple[str, str, str], str] = {}
    for m in _URL_RE.finditer(current):
        known.setdefault(_url_key(m), m.group(3) or "")
    missing: list[str] = []

    def url(m: re.Match[str]) -> str:
        if m.group(3) != ":" + HIDDEN:
            return m.group(0)
        cred = known.get(_url_key(m))
        if cred is None or cred == ":" + HIDDEN:
            missing.append(f"{m.group(1)}{m.group(2)}:{HIDDEN}@{m.group(4)}")
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{cred}@{m.group(4)}"

    edited = _URL_RE.sub(url, edited)
    values = [m.group(2) for m in _KEY_RE.finditer(current)]
    same_keys = len(values) == len(_KEY_RE.findall(edited))
    seen = iter(range(len(values) + len(edited)))

    def key(m: re.Match[str]) -> str:
        # the n-th `password:` of the file, when both have as many; else the file's only value
        n = next(seen)
        if m.group(2) not in _HIDDEN_VALUES:
            return m.group(0)
        found = values[n] if same_keys else (values[0] if len(set(values)) == 1 else None)
        if found is None or found in _HIDDEN_VALUES:
            missing.append(f"password: {HIDDEN}")
            return m.group(0)
        return m.group(1) + found

    edited = _KEY_RE.sub(key, edited)
    if missing:
        raise SecretsError(
            "the box has no password for "
            + ", ".join(dict.fromkeys(missing))
            + f": write the password instead of {HIDDEN}"
        )
    return edited
