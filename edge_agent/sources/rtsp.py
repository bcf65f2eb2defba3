"""A live camera: one reader thread, a short frame queue, a stall watchdog, reconnects.

The reader thread pulls frames from OpenCV's FFmpeg backend as fast as the
camera sends them and keeps the newest `QUEUE_FRAMES` (2) of those due at
`detect.fps`; a frame pushed out before a detection worker took it is dropped and
counted. Two, not one: with every core busy a worker sometimes starts a camera's
frame a little more than one period late, and a one-frame slot then lost the frame
although the worker caught up at once (bench/REPORT.md, "Live cameras"); a longer
queue would only grow latency when the box is truly short of CPU.

Measured behaviour of the FFmpeg backend decides the shape of the loop:
- after the server dies, `read()` returns False at once and that capture never
  recovers, so every failure releases the capture and opens a new one;
- a hung server blocks `read()` for the whole read timeout and a blocked read
  cannot be interrupted, so a watchdog thread marks the camera `stalled` from
  outside after `stall_s` without a new frame, and the reader reopens as soon
  as its read returns.

Reopens wait an exponential backoff with jitter, reset by the first frame read.
A local file or `file://` URL works too: it loops forever at the file's own
frame rate, so a recorded clip can stand in for a camera.

A camera that records its detection stream is given a pre-roll ring (`ring=`): it is then
read with PyAV (`av_capture.py`), whose demuxer hands every packet to the ring before
decoding, so ring and detector share one RTSP session; the loop above is the same.

Time: `media_s` is monotonic seconds since the source started (rules keep a
steady clock across reconnects); `wall_ts` is the UNIX time of the read;
`index` keeps rising across reconnects. URLs in logs, errors and statuses
always go through `redact()`: camera passwords never leave this module.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import cv2

from edge_agent.core.backoff import Backoff
from edge_agent.core.config import CameraConfig, redact
from edge_agent.core.pacing import FramePacer
from edge_agent.core.types import Frame
from edge_agent.sources import SourceError
from edge_agent.sources.capture import file_path, open_capture

if TYPE_CHECKING:  # PyAV is loaded only by a camera that records (about 24 MB of libraries)
    from edge_agent.sources.av_capture import AvCapture
    from edge_agent.sources.packet_ring import PacketRing

logger = logging.getLogger(__name__)

FPS_WINDOW_S = 5.0
QUEUE_FRAMES = 2  # frames due at detect.fps kept for the worker: one period of slack
DEFAULT_FILE_FPS = 25.0
STATUSES = ("starting", "online", "stalled", "offline")


class RtspSource:
    """One live camera (RTSP, or a looping file) read by its own thread.

    Non-blocking use (the daemon): `start()`, then `next_frame(after_index)` from
    a detection worker (the oldest queued frame it has not had), `stop()` at the end;
    `newest()` looks at the newest without taking it (a snapshot). Blocking use (the `Source` protocol):
    iterate; every iteration waits for a frame newer than the last.
    """

    def __init__(
        self,
        cam: CameraConfig,
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_frame: Callable[[], None] | None = None,
        pace_fps: float | None = None,
        ring: PacketRing | None = None,
    ) -> None:
        self.camera_id = cam.id
        # With a pre-roll ring (a camera that records its detection stream) the stream is read
        # with PyAV: one session gives the ring its packets and the detector its frames.
        self._ring = ring
        # With `pace_fps` (the daemon passes `detect.fps`) only frames due at that rate are
        # handed over: the others are decoded (the stream needs them) but never converted
        # to a picture, a quarter of the reader's work each (see core/pacing.py).
        self._pacer = FramePacer(pace_fps) if pace_fps else None
        # Called on the reader thread after each new frame, so a worker serving several
        # cameras can sleep until any of them has something (see app/workers.py).
        self._on_frame = on_frame
        self._url = cam.url
        self.url_redacted = redact(cam.url)
        self.stall_s = cam.stall_s
        self.open_timeout_s = cam.open_timeout_s
        self.read_timeout_s = cam.read_timeout_s
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._clock = clock
        # A missing file is not raised here: like an unreachable camera, the reader reports
        # it (offline, with the reason) and tries again with backoff.
        self._path = file_path(cam.url)

        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._started_at = 0.0
        self._queue: collections.deque[Frame] = collections.deque(maxlen=QUEUE_FRAMES)
        self._handed = -1  # the highest index handed out: older queued frames were taken or skipped
        self._next_index = 0
        self._reading_since: float | None = None  # when the current capture last delivered or opened
        self._reopen = False
        self._read_times: collections.deque[float] = collections.deque(maxlen=1024)

        self.status = "starting"
        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.stalls = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"RtspSource({self.camera_id!r}, {self.url_redacted!r}, status={self.status!r})"

    # --- public API --------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and watchdog threads (once); returns at once."""
        if self._reader is not None:
            return
        self._started_at = self._clock()
        self._reader = threading.Thread(target=self._run, name=f"rtsp-{self.camera_id}", daemon=True)
        self._watchdog = threading.Thread(
            target=self._watch, name=f"rtsp-watchdog-{self.camera_id}", daemon=True
        )
        self._reader.start()
        self._watchdog.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the threads to end and wait up to `timeout_s`; True when they ended.

        A read blocked on a hung camera cannot be cut short: the reader then
        ends (and releases its capture) when the read timeout expires. The
        threads are daemons, so they never hold the process open.
        """
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in (self._watchdog, self._reader):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t is not None and t.is_alive() for t in (self._watchdog, self._reader))

    def close(self) -> None:
        self.stop()

    def latest(self, after_index: int = -1) -> Frame | None:
        """The newest frame if its index is above `after_index`, else None (never blocks)."""
        with self._lock:
            return self._take(after_index)

    def newest(self) -> Frame | None:
        """The newest frame, for a look that is not analysis (a snapshot): nothing counts it taken."""
        with self._lock:
            return self._newest()

    def next_frame(self, after_index: int = -1) -> Frame | None:
        """The oldest queued frame with an index above `after_index`, else None (never blocks).

        A detection worker steps through the queue with this, so a frame it reaches a
        little late is still analysed, in order."""
        with self._lock:
            for frame in self._queue:
                if frame.index > after_index:
                    self._handed = max(self._handed, frame.index)
                    return frame
            return None

    def wait_latest(self, after_index: int = -1, timeout_s: float | None = None) -> Frame | None:
        """Like `latest`, but waits up to `timeout_s` (None: until stopped) for a newer frame."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while True:
                frame = self._take(after_index)
                if frame is not None or self._stop.is_set():
                    return frame
                remaining = 1.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._lock.wait(min(remaining, 1.0))

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        last = -1
        while not self._stop.is_set():
            frame = self.wait_latest(last)
            if frame is not None:
                last = frame.index
                yield frame

    @property
    def frames_paced_out(self) -> int:
        """Frames read but not handed over: between two slots of `pace_fps`."""
        return self._pacer.skipped if self._pacer is not None else 0

    @property
    def fps(self) -> float:
        """Frames read per second over the last few seconds (0 when none arrived)."""
        now = self._clock()
        with self._lock:
            while self._read_times and now - self._read_times[0] > FPS_WINDOW_S:
                self._read_times.popleft()
            if len(self._read_times) < 2:
                return 0.0
            span = self._read_times[-1] - self._read_times[0]
            return (len(self._read_times) - 1) / span if span > 0 else 0.0

    # --- the slot ----------------------------------------------------------------------

    def _newest(self) -> Frame | None:
        return self._queue[-1] if self._queue else None

    def _take(self, after_index: int) -> Frame | None:
        frame = self._newest()
        if frame is None or frame.index <= after_index:
            return None
        self._handed = max(self._handed, frame.index)
        return frame

    def _publish(self, image: Any, now: float) -> None:
        """Count a read frame; `image` None: one paced out (read, not handed over)."""
        with self._lock:
            if image is not None:
                queue = self._queue
                if len(queue) == queue.maxlen and queue[0].index > self._handed:
                    self.frames_dropped += 1  # pushed out before any worker took it
                queue.append(
                    Frame(self.camera_id, self._next_index, now - self._started_at, time.time(), image)
                )
            self._next_index += 1
            self.frames_read += 1
            self._read_times.append(now)
            self._reading_since = now
            was = self.status
            self.status = "online"
            self._lock.notify_all()
        if image is not None and self._on_frame is not None:
            self._on_frame()
        if was != "online":
            logger.info("camera %s: online (was %s): %s", self.camera_id, was, self.url_redacted)

    def _fail(self, status: str, error: str) -> None:
        """Record a failure; the first of a run of equal errors is logged as a warning."""
        error = redact(error)
        with self._lock:
            repeated = error == self.last_error and self.status == status
            self.last_error = error
            self.status = status
            self._reading_since = None
        log = logger.debug if repeated else logger.warning
        log("camera %s: %s", self.camera_id, error)

    # --- the threads -------------------------------------------------------------------

    def _watch(self) -> None:
        tick = min(0.5, self.stall_s / 4)
        while not self._stop.wait(tick):
            now = self._clock()
            with self._lock:
                since = self._reading_since
                if since is None or self._reopen or now - since < self.stall_s:
                    continue
                self._reopen = True
                self.stalls += 1
                self.status = "stalled"
                self.last_error = f"no new frame for {now - since:.1f} s (stall_s {self.stall_s:g})"
                error = self.last_error
            logger.warning("camera %s: stalled, %s; reopening %s", self.camera_id, error, self.url_redacted)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                with self._lock:
                    self.reconnects += 1
            first = False
            try:
                cap = self._open()
                if cap is not None:
                    try:
                        self._read_until_broken(cap)
                    finally:
                        cap.release()
            except Exception as err:
                # Whatever broke (OpenCV raising on a URL it cannot parse, a decoder bug), it
                # stays in this camera: offline with the reason, retried with backoff like any
                # other failure. The traceback goes to the log once, at debug level after that.
                repeated = self.last_error is not None and type(err).__name__ in self.last_error
                (logger.debug if repeated else logger.warning)(
                    "camera %s: reader failed", self.camera_id, exc_info=True
                )
                self._fail("offline", f"reader failed: {type(err).__name__}: {err}")
            if not self._stop.is_set():
                self._stop.wait(self._backoff.next_delay())

    def media_now(self) -> float:
        """The reader's media clock now (the clock of `Frame.media_s`), for a separate recorder."""
        return self._clock() - self._started_at

    def _open(self) -> cv2.VideoCapture | AvCapture | None:
        with self._lock:
            # The watchdog watches reads only: an open has its own timeout.
            self._reopen = False
            self._reading_since = None
        try:
            if self._ring is not None:
                from edge_agent.sources.av_capture import open_av_capture

                cap: cv2.VideoCapture | AvCapture = open_av_capture(
                    self._url, self.open_timeout_s, self.read_timeout_s, self._ring, self.media_now
                )
            else:
                cap = open_capture(self._url, self.open_timeout_s, self.read_timeout_s)
        except SourceError as err:
            self._fail("offline", str(err))
            return None
        with self._lock:
            self._reading_since = self._clock()
        logger.debug("camera %s: opened %s", self.camera_id, self.url_redacted)
        return cap

    def _read(self, cap: cv2.VideoCapture | AvCapture) -> tuple[bool, Any, float]:
        """(ok, picture or None when paced out, read time): one frame off the stream."""
        if not cap.grab():
            return False, None, self._clock()
        now = self._clock()
        if self._pacer is not None and not self._pacer.due(now - self._started_at):
            return True, None, now
        ok, image = cap.retrieve()
        return bool(ok) and image is not None, image if ok else None, now

    def _read_until_broken(self, cap: cv2.VideoCapture | AvCapture) -> None:
        file_fps = 0.0
        if self._path is not None:
            file_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if not math.isfinite(file_fps) or file_fps <= 0 or file_fps > 240:
                file_fps = DEFAULT_FILE_FPS
        due = self._clock()
        rewound = False
        while not self._stop.is_set():
            t0 = time.monotonic()
            ok, image, now = self._read(cap)
            if self._stop.is_set():
                return
            with self._lock:
                reopen = self._reopen
            if reopen:
                return  # the watchdog saw a stall; what this read returned is stale
            if not ok:
                if self._path is not None and not rewound:
                    # End of the file: loop. A second failure right after rewinding is an error.
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    rewound = True
                    continue
                if self._path is not None:
                    why = "no readable frame after rewinding"
                elif time.monotonic() - t0 >= 0.9 * self.read_timeout_s:
                    why = f"no data within read_timeout_s {self.read_timeout_s:g} s"
                else:
                    why = "the stream ended (connection lost)"
                self._fail("offline", f"read from {self.url_redacted} failed: {why}")
                return
            rewound = False
            self._backoff.reset()
            self._publish(image, now)
            if file_fps:
                due = max(due + 1.0 / file_fps, now - 1.0)
                delay = due - self._clock()
                if delay > 0 and self._stop.wait(delay):
                    return


# --- diagnosis of a failed open ------------------------------------------------------------
