"""Loopback checks and the address to show, for the project's web servers (the zone page on a
box, the town console)."""

from __future__ import annotations

import ipaddress

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(host: str, port: int) -> str:
    """`http://host:port/` as a person opens it; a wildcard bind is shown as this machine's name."""
    shown = f"[{host}]" if ":" in host else host
    if shown in ("0.0.0.0", "[::]"):  # noqa: S104 (naming it, not binding it)
        shown = "localhost"
    return f"http://{shown}:{port}/"
