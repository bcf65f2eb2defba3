"""The status board: what the agent says about itself, for the publisher to send.

The agent writes each camera's state and its stats here; the publisher reads
them on its own thread and publishes them (camera states retained, again after
every reconnect). Nothing here calls back into the agent: a slow or failing
stats builder cannot stall the drain of the outbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from edge_agent.core.types import iso_utc

CAMERA_STATES = ("online", "offline", "stalled")


class StatusBoard:
    """Camera states (the latest per camera) and the latest stats; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cameras: dict[str, tuple[str, str]] = {}
        self._dirty: set[str] = set()
        self._stats: dict[str, Any] = {}
        self._listeners: list[Callable[[], None]] = []

    def set_camera_status(self, camera: str, state: str, since: str | None = None) -> None:
        """A camera's state; the publisher sends it (retained) unless it is unchanged."""
        if state not in CAMERA_STATES:
            raise ValueError(f"camera state must be one of {CAMERA_STATES}, got {state!r}")
        with self._lock:
            old = self._cameras.get(camera)
            if old is not None and old[0] == state and since is None:
                return
            self._cameras[camera] = (state, since or iso_utc())
            self._dirty.add(camera)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def put_stats(self, stats: Mapping[str, Any]) -> None:
        """The agent's part of the next stats message (cameras, workers, evidence)."""
        with self._lock:
            self._stats = dict(stats)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._stats)

    def camera_changes(self, *, all_cameras: bool = False) -> list[tuple[str, str, str]]:
        """(camera, state, since) of the cameras changed since the last call (all: after a connect)."""
        with self._lock:
            names = sorted(self._cameras) if all_cameras else sorted(self._dirty)
            self._dirty.clear()
            return [(cam, *self._cameras[cam]) for cam in names]

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (from the writing thread) when a camera's state changes."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
