"""A recorder for a `record_url` that is not the detection `url` (a camera's main stream).

One thread demuxes the stream into the pre-roll ring, never decoding it (the detector reads
the sub-stream elsewhere). It stamps each packet with `clock()`, which must be the media
clock of the camera's detection reader (`RtspSource.media_now`), so clips are cut by the
times the rules see. A lost or refused stream is reported (`status`, `last_error`, without
the password) and opened again after an exponential backoff, reset by a packet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edge_agent.core.backoff import Backoff
from edge_agent.core.urls import redact
from edge_agent.sources import SourceError
from edge_agent.sources.av_capture import AvCapture, open_container
from edge_agent.sources.packet_ring import PacketRing

logger = logging.getLogger(__name__)


class RecordOnly:
    def __init__(
        self,
        url: str,
        ring: PacketRing,
        clock: Callable[[], float],
        *,
        name: str = "camera",
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._url = url
        self.url_redacted = redact(url)
        self.ring = ring
        self.name = name
        self._clock = clock
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._backoff = backoff or Backoff(1.0, 60.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.status = "starting"
        self.last_error: str | None = None
        self.reconnects = 0
        self.packets = 0

    def __repr__(self) -> str:
        return f"RecordOnly({self.name!r}, {self.url_redacted!r}, status={self.status!r})"

    def start(self) -> RecordOnly:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"record-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the thread to end; a read blocked on a hung camera ends at the read timeout."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self._thread is None or not self._thread.is_alive()

    def _set(self, status: str, error: str | None = None) -> None:
        with self._lock:
            was, same = self.status, error == self.last_error
            self.status = status
            if error is not None:
                self.last_error = redact(error)
        if status != was or (error is not None and not same):
            log = logger.info if error is None else logger.warning
            log("recorder %s: %s%s", self.name, status, f": {redact(error)}" if error else "")

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnects += 1
            first = False
            try:
                cap = AvCapture(
                    open_container(self._url, self.open_timeout_s, self.read_timeout_s),
                    self.ring,
                    self._clock,
                    decode=False,
                )
            except SourceError as err:
                self._set("offline", str(err))
            except Exception as err:  # a PyAV surprise stays in this recorder, retried like any failure
                logger.debug("recorder %s: open failed", self.name, exc_info=True)
                self._set("offline", f"recorder failed: {type(err).__name__}")
            else:
                try:
                    self._pump(cap)
                finally:
                    cap.release()
            if not self._stop.is_set():
                self._stop.wait(self._backoff.next_delay())

    def _pump(self, cap: AvCapture) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            if not cap.pump():
                if time.monotonic() - t0 >= 0.9 * self.read_timeout_s:
                    why = f"no data within read_timeout_s {self.read_timeout_s:g} s"
                else:
                    why = "the stream ended (connection lost)"
                self._set("offline", f"read from {self.url_redacted} failed: {why}")
                return
            self.packets += 1
            if self.status != "online":
                self._backoff.reset()
                self._set("online")
