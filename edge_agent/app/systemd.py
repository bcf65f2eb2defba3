"""systemd service notifications, without the libsystemd dependency.

Under a `Type=notify` unit systemd sets `NOTIFY_SOCKET` to a unix datagram
socket (a path, or `@name` for the abstract namespace). The agent sends
`READY=1` once its cameras and publisher are started, `RELOADING=1` /
`READY=1` around a config reload, `STOPPING=1` on shutdown and, when the unit
has `WatchdogSec=`, `WATCHDOG=1` from its main loop. If the loop stops, the
kicks stop and systemd restarts the service.

Outside systemd (a shell, a container, the tests) every call is a cheap no-op
that returns False.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["Watchdog", "notify_socket_address", "sd_notify"]


def notify_socket_address(env: Mapping[str, str] | None = None) -> str | bytes | None:
    """The address in `NOTIFY_SOCKET`, ready for `socket.connect`/`sendto`; None when unset.

    A leading `@` means the Linux abstract namespace, which Python spells with a NUL byte.
    """
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other address kinds are not used by this agent


def sd_notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification (e.g. `READY=1`) to systemd.

    Returns True when the message was sent, False when not running under systemd
    or the socket could not be reached. Never raises: a notification failing must
    not stop the agent.
    """
    address = notify_socket_address(env)
    if address is None or not message:
        return False
    data = message.encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sent = sock.send(data)
    except OSError:
        return False
    return sent == len(data)


class Watchdog:
    """Sends `WATCHDOG=1` from the main loop, at most every half `WatchdogSec`.

    `kick()` is cheap enough to call on every loop iteration; it only talks to
    systemd when half the interval has passed since the last kick. `enabled` is
    False when the unit has no watchdog (no `WATCHDOG_USEC`), when `WATCHDOG_PID`
    names another process, or when there is no `NOTIFY_SOCKET`.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._env: Mapping[str, str] = dict(os.environ if env is None else env)
        self._clock = clock
        self._last: float | None = None
        self.interval_s: float | None = self._read_interval()

    def _read_interval(self) -> float | None:
        if notify_socket_address(self._env) is None:
            return None
        try:
            usec = int(self._env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        if usec <= 0:
            return None
        pid = self._env.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            return None
        return usec / 1_000_000

    @property
    def enabled(self) -> bool:
        return self.interval_s is not None

    def kick(self, force: bool = False) -> bool:
        """Tell systemd the loop is alive; True when a `WATCHDOG=1` was sent now."""
        if self.interval_s is None:
            return False
        now = self._clock()
        if not force and self._last is not None and now - self._last < self.interval_s / 2:
            return False
        if sd_notify("WATCHDOG=1", self._env):
            self._last = now
            return True
        return False
