"""glibc's malloc, set for a long-running process with a thread per camera.

- `limit_malloc_arenas`: glibc gives each thread that allocates its own arena (up to 8 per
  core), and an arena keeps the frame-sized buffers its thread freed: with a reader per
  camera that is several MB of RSS per camera that nothing uses. Two arenas, the usual
  setting for threaded services (`MALLOC_ARENA_MAX=2`), keep the RSS flat; an explicit
  `MALLOC_ARENA_MAX` in the environment wins.
- `MallocTrim`: even in two arenas, the frames, tensors and clip buffers freed between
  two frames leave free pages inside the heaps that glibc keeps rather than give back
  (it only trims the top of the main heap). `malloc_trim(0)` every `TRIM_EVERY_S` hands
  them back to the system: at 16 busy cameras recording, the agent's RSS was 340 / 341 MB
  with it against 371 / 372 MB without (2 interleaved rounds on a 2-core box), its CPU
  per analysed frame the same within the box's noise (a trim takes well under a
  millisecond; the pages it gives back are faulted in again when next used).

Both do nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable

logger = logging.getLogger(__name__)

MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter number
TRIM_EVERY_S = 5.0


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the reader and worker threads start; False where this
    is not glibc or `MALLOC_ARENA_MAX` is set in the environment."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _libc()
    try:
        return libc is not None and bool(libc.mallopt(M_ARENA_MAX, arenas))
    except AttributeError:
        return False


def glibc_trim() -> Callable[[], bool] | None:
    """`malloc_trim(0)` of this process's glibc (True when it gave memory back), or None."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def run() -> bool:
        return bool(trim(0))

    return run


class MallocTrim:
    """Gives the heaps' free pages back every `every_s` seconds, on the caller's clock."""

    def __init__(self, every_s: float = TRIM_EVERY_S, trim: Callable[[], bool] | None = None) -> None:
        self.every_s = every_s
        self._trim = trim if trim is not None else glibc_trim()
        self._next_s: float | None = None
        self.trims = 0

    def tick(self, now_s: float) -> None:
        """Trim when `every_s` has passed since the last trim (the first tick only starts the clock)."""
        if self._trim is None:
            return
        if self._next_s is None:
            self._next_s = now_s + self.every_s
        if now_s < self._next_s:
            return
        self._next_s = now_s + self.every_s
        self._trim()
        self.trims += 1
