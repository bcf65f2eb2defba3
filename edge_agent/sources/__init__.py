"""The sources layer: where frames come from. `file` (a recorded video, time from the video),
`rtsp` (a live camera: reader thread, a two-frame queue), `capture` (the one door to OpenCV's
FFmpeg capture: options and timeouts, thread-safe) and `probe` (what a camera stream is).

Sources import `edge_agent.core` and themselves; never `pipeline`, `delivery`, `app` or `tools`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from edge_agent.core.types import Frame


class SourceError(Exception):
    """A source that cannot be opened or read; the message is one line for the user."""


class Source(Protocol):
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
