"""Exponential backoff with jitter for reconnect loops."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays that double from `initial_s` up to `max_s`, each shortened by a random share.

    The jitter spreads the reconnects of many boxes of one village that lost
    the same uplink, so they do not hit the broker in the same second when it
    comes back. A delay is drawn from `[d * (1 - jitter), d]` where `d` is the
    undisturbed exponential delay; `reset()` starts over after a connection
    that held.
    """

    def __init__(
        self,
        initial_s: float = 1.0,
        max_s: float = 60.0,
        factor: float = 2.0,
        jitter: float = 0.3,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"backoff: need 0 < initial_s <= max_s, got {initial_s} and {max_s}")
        if factor < 1.0:
            raise ValueError(f"backoff: factor must be >= 1, got {factor}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"backoff: jitter must be in [0, 1), got {jitter}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self._rand = rand
        self._attempt = 0
        self._base_s = initial_s

    @property
    def attempt(self) -> int:
        """How many delays were drawn since the last reset."""
        return self._attempt

    def next_delay(self) -> float:
        base = self._base_s
        self._base_s = min(self.max_s, base * self.factor)
        self._attempt += 1
        return base * (1.0 - self.jitter * self._rand())

    def reset(self) -> None:
        self._attempt = 0
        self._base_s = self.initial_s
