"""Frame sources: a recorded file (replay) or a live camera."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from edge_agent.types import Frame


class SourceError(Exception):
    """A source that cannot be opened or read; the message is one line for the user."""


class Source(Protocol):
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
