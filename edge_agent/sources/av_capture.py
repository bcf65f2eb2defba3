"""A camera read with PyAV: one RTSP session feeds the packet ring and the detector.

When a camera records and its `record_url` is its detection `url`, the reader
(`rtsp.py`) opens the stream here instead of through OpenCV (`capture.py`): every
video packet goes to the pre-roll ring (`packet_ring.py`) as it is demuxed, still
encoded, and then to the decoder, so the camera serves one session, not two.

`AvCapture` has the part of `cv2.VideoCapture` the reader uses (`grab`, `retrieve`,
`release`, `get(CAP_PROP_FPS)`, `set(CAP_PROP_POS_FRAMES, 0)` to loop a file): `grab`
demuxes and decodes until the next picture and `retrieve` converts only the pictures
asked for (the reader paces). The transport, probe size and one decoding thread are
those of `capture.py`; a corrupt packet that does not decode is skipped and counted.
Open failures raise `SourceError` with the same plain, password-free reasons.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from edge_agent.core.urls import ffmpeg_url, redact
from edge_agent.sources import SourceError
from edge_agent.sources.capture import DECODE_THREADS, DEFAULT_CAPTURE_OPTIONS, file_path
from edge_agent.sources.packet_ring import PacketRing
from edge_agent.sources.probe import probe_rtsp

logger = logging.getLogger(__name__)

# What ends a read: the stream's end, a lost connection, a read timeout (PyAV's interrupt).
_READ_ERRORS = (av.error.FFmpegError, OSError, EOFError)
# The BGR conversion runs whole on the reader's thread, as OpenCV's reader does it.
CONVERT_THREADS = 1


def open_container(url: str, open_timeout_s: float, read_timeout_s: float) -> Any:
    """An opened PyAV input with a video stream; raises SourceError (one line, no password)."""
    path = file_path(url)
    if path is not None:
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, OSError):
            missing = "" if path.is_file() else " (no such file)"
            raise SourceError(f"{path}: cannot open the video file{missing}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{path}: the file has no video stream")
        return container
    options = dict(DEFAULT_CAPTURE_OPTIONS)
    read_timeout: float | None = read_timeout_s
    if url.lower().startswith(("rtsp://", "rtsps://")):
        # FFmpeg's own socket timeout (microseconds) ends a read from a silent camera. PyAV's
        # read timeout would do it by a callback that takes the GIL at every network wait:
        # measured about 2.5 points of one core for ten cameras, and it waits on busy threads.
        options["timeout"] = str(int(read_timeout_s * 1_000_000))
        read_timeout = None
    t0 = time.monotonic()
    try:
        container = av.open(ffmpeg_url(url), options=options, timeout=(open_timeout_s, read_timeout))
    except (av.error.FFmpegError, OSError) as err:
        # PyAV's message holds the URL as given (with its password): only the probe's words go out.
        logger.debug("open %s failed: %s", redact(url), redact(str(err)))
        if time.monotonic() - t0 >= 0.9 * open_timeout_s:
            why = f"no answer within open_timeout_s {open_timeout_s:g} s"
        else:
            why = probe_rtsp(url, min(2.0, open_timeout_s))
        raise SourceError(f"cannot open {redact(url)}: {why}") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"cannot open {redact(url)}: the stream has no video")
    return container


class AvCapture:
    """One opened stream: packets to the ring (when there is one), pictures on demand."""

    def __init__(
        self,
        container: Any,
        ring: PacketRing | None,
        clock: Callable[[], float],
        *,
        decode: bool = True,
    ) -> None:
        self._container = container
        self._stream = container.streams.video[0]
        if decode:
            # One decoding thread per camera, as the OpenCV path (capture.py DECODE_THREADS).
            self._stream.codec_context.thread_count = DECODE_THREADS
        self._ring = ring
        self._clock = clock
        self._packets = container.demux(self._stream)
        self._pending: deque[Any] = deque()
        self._frame: Any = None
        # One converter for all of the camera's pictures. `frame.to_ndarray(format=...)` makes
        # a new one per picture: a swscale context set up again for every frame, with a pool
        # of threads of its own (`threads` 0: one per core) started and ended each time.
        self._to_bgr = VideoReformatter()
        self.decode_errors = 0
        self.last_error: str | None = None
        if ring is not None:
            ring.begin(self._stream)

    @property
    def stream(self) -> Any:
        return self._stream

    def _next_packet(self) -> Any | None:
        """The next video packet (already in the ring), or None when the stream ended or broke."""
        try:
            packet = next(self._packets)
        except StopIteration:
            return None
        except _READ_ERRORS as err:
            self.last_error = redact(str(err))
            return None
        if self._ring is not None and packet.size:
            self._ring.add(packet, self._clock())
        return packet

    def pump(self) -> bool:
        """Demux one video packet into the ring without decoding it; False when the stream ended."""
        packet = self._next_packet()
        return packet is not None and packet.size > 0

    def grab(self) -> bool:
        """Demux and decode until the next picture; False only when the stream ended or broke."""
        self._frame = None
        while not self._pending:
            packet = self._next_packet()
            if packet is None:
                return False
            try:
                # An empty packet at the end of a file flushes the frames the decoder holds.
                self._pending.extend(self._stream.codec_context.decode(packet if packet.size else None))
            except av.error.FFmpegError as err:
                # A corrupt packet (lost data on a bad link): skip it; the next key frame heals.
                self.decode_errors += 1
                logger.debug("decode error (%d so far): %s", self.decode_errors, err)
                if packet.size == 0:
                    return False
        self._frame = self._pending.popleft()
        return True

    def retrieve(self) -> tuple[bool, npt.NDArray[np.uint8] | None]:
        """The grabbed picture as a BGR array (converted only now)."""
        frame, self._frame = self._frame, None
        if frame is None:
            return False, None
        bgr = self._to_bgr.reformat(frame, format="bgr24", threads=CONVERT_THREADS)
        return True, np.asarray(bgr.to_ndarray(), dtype=np.uint8)

    def read(self) -> tuple[bool, npt.NDArray[np.uint8] | None]:
        if not self.grab():
            return False, None
        return self.retrieve()

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            rate = self._stream.average_rate or self._stream.guessed_rate
            return float(rate) if rate else 0.0
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            return float(self._stream.codec_context.width)
        if prop == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(self._stream.codec_context.height)
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        """Only rewinding (`CAP_PROP_POS_FRAMES`, 0) is supported: a looping file."""
        if prop != cv2.CAP_PROP_POS_FRAMES or value != 0:
            return False
        try:
            self._container.seek(0, stream=self._stream)
        except _READ_ERRORS as err:
            self.last_error = redact(str(err))
            return False
        self._stream.codec_context.flush_buffers()
        self._pending.clear()
        self._packets = self._container.demux(self._stream)
        if self._ring is not None:
            # The timestamps start again: the ring starts another run of segments.
            self._ring.end()
            self._ring.begin(self._stream)
        return True

    def release(self) -> None:
        if self._ring is not None:
            self._ring.end()
        self._pending.clear()
        self._frame = None
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError) as err:
            logger.debug("closing a capture: %s", redact(str(err)))


def open_av_capture(
    url: str,
    open_timeout_s: float,
    read_timeout_s: float,
    ring: PacketRing | None,
    clock: Callable[[], float],
) -> AvCapture:
    """Open a camera stream or a video file with PyAV; raises SourceError (no password) if it fails.

    `clock` gives the reader's media time (the clock of `Frame.media_s`), stamped on each
    packet the ring keeps.
    """
    return AvCapture(open_container(url, open_timeout_s, read_timeout_s), ring, clock)
