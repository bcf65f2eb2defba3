"""The stream recorder: a pre-roll ring of one camera's encoded stream, for evidence clips.

FFmpeg reads `record_url` (the camera's main stream; default: the detection `url`) and its
segment muxer copies the packets, never decoded nor re-encoded, into MPEG-TS segments of
about `segment_s` seconds in a folder of its own; `segment_wrap` makes it overwrite the
oldest, so the ring holds `keep_s` seconds at most, and the recorder removes the oldest
segments beyond `max_mb` too (a camera whose bit rate jumps). One FFmpeg process, one
RTSP session (over TCP) per recorded stream. When the camera goes away FFmpeg exits; the
recorder starts it again after a backoff, counting restarts.

`cut(start_ts, end_ts)` joins the complete segments that overlap the wall-clock window
into an MP4 (stream copy, faststart, bitexact): it starts at a segment's first key frame,
so up to one segment before `start_ts`, and it holds what was complete by then (the
segment being written is not: up to `segment_s` of the newest video is missing). A
segment's wall-clock span is taken from its file's modification time (its end) and its
length; the precision is a few hundred milliseconds.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.core.backoff import Backoff
from edge_agent.core.urls import redact

logger = logging.getLogger(__name__)

FFMPEG_TIMEOUT_S = 60.0
_MB = 1024 * 1024


@dataclass(frozen=True)
class Segment:
    path: Path
    start_ts: float  # wall clock
    end_ts: float
    size: int


class StreamRecorder:
    def __init__(
        self,
        url: str,
        folder: str | Path,
        keep_s: float = 60.0,
        segment_s: float = 2.0,
        max_mb: float = 64.0,
        backoff: Backoff | None = None,
    ) -> None:
        if keep_s < 2 * segment_s or segment_s <= 0:
            raise ValueError(f"recorder: need 0 < 2 * segment_s <= keep_s, got {segment_s} and {keep_s}")
        self.url = url
        self.folder = Path(folder)
        self.keep_s = keep_s
        self.segment_s = segment_s
        self.max_bytes = int(max_mb * _MB)
        self.wrap = int(keep_s // segment_s) + 2  # the one being written, and one being read
        self.backoff = backoff or Backoff(1.0, 30.0)
        self.ffmpeg = shutil.which("ffmpeg")
        self.restarts = 0
        self.pruned = 0
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- running ---------------------------------------------------------------------

    def start(self) -> StreamRecorder:
        if self.ffmpeg is None:
            raise RuntimeError("the stream recorder needs ffmpeg (apt install ffmpeg)")
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("seg*.ts"):  # a ring of an earlier run: its times are unknown
            old.unlink()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.folder.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _command(self) -> list[str]:
        assert self.ffmpeg is not None
        transport = ["-rtsp_transport", "tcp"] if self.url.startswith("rtsp") else []
        # small probe and no reorder buffer: a copy needs neither, and each costs memory per camera
        return [self.ffmpeg, "-nostdin", "-v", "error", "-probesize", "500000", "-analyzeduration", "1000000",
                "-fflags", "nobuffer", "-threads", "1", *transport, "-i", self.url, "-map", "0:v:0",
                "-c", "copy", "-f", "segment", "-segment_time", f"{self.segment_s:g}",
                "-segment_format", "mpegts", "-segment_wrap", str(self.wrap), "-reset_timestamps", "1",
                str(self.folder / "seg%04d.ts")]  # fmt: skip

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            with self._lock:
                self._proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                proc = self._proc
            while proc.poll() is None and not self._stop.wait(1.0):
                self._prune()
            if self._stop.is_set():
                break
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr is not None else ""
            if time.monotonic() - began > 10 * self.segment_s:
                self.backoff.reset()  # it recorded for a while: start again at once
            delay = self.backoff.next_delay()
            self.restarts += 1
            logger.warning(
                "recorder %s stopped (%s); starting again in %.1f s",
                redact(self.url),
                redact(err.splitlines()[-1]) if err else f"exit {proc.returncode}",
                delay,
            )
            self._stop.wait(delay)

    def _prune(self) -> None:
        """Keep the ring within max_bytes: the oldest complete segments go first."""
        done = self.segments()
        total = sum(s.size for s in done)
        for seg in done:
            if total <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                seg.path.unlink()
            total -= seg.size
            self.pruned += 1

    # --- reading ---------------------------------------------------------------------

    def segments(self) -> list[Segment]:
        """The complete segments of the ring, oldest first (the newest file is still being written)."""
        found = []
        for path in self.folder.glob("seg*.ts"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found.append((st.st_mtime, path, st.st_size))
        found.sort()
        out = []
        for mtime, path, size in found[:-1]:
            out.append(Segment(path, mtime - self.segment_s, mtime, size))
        # a segment's start is the end of the one before it, where there is one
        fixed = [out[0]] if out else []
        for prev, seg in itertools.pairwise(out):
            start = prev.end_ts if seg.end_ts - prev.end_ts < 3 * self.segment_s else seg.start_ts
            fixed.append(Segment(seg.path, start, seg.end_ts, seg.size))
        return fixed

    def cut(self, start_ts: float, end_ts: float) -> bytes | None:
        """An MP4 of the ring between two wall-clock times; None when the ring holds none of it."""
        parts = [s for s in self.segments() if s.end_ts > start_ts and s.start_ts < end_ts]
        if not parts or self.ffmpeg is None:
            return None
        with tempfile.TemporaryDirectory(prefix="edge-agent-ring-") as tmp:
            joined = Path(tmp) / "joined.ts"
            with joined.open("wb") as out:
                for seg in parts:  # MPEG-TS segments of one stream join by concatenation
                    try:
                        out.write(seg.path.read_bytes())
                    except FileNotFoundError:
                        continue  # overwritten meanwhile: the ring moved on
            clip = Path(tmp) / "clip.mp4"
            done = subprocess.run(
                [self.ffmpeg, "-v", "error", "-y", "-i", str(joined), "-map", "0:v:0", "-c", "copy",
                 "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
                 "-movflags", "+faststart", "-f", "mp4", str(clip)],
                capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                logger.warning(
                    "recorder: cannot make a clip: %s", done.stderr.decode(errors="replace")[-200:]
                )
                return None
            return clip.read_bytes()

    def ring_bytes(self) -> int:
        total = 0
        for path in self.folder.glob("seg*.ts"):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total


def pid_of(recorder: StreamRecorder) -> int | None:
    """The running FFmpeg's process id (for measuring its cost)."""
    proc = recorder._proc
    return proc.pid if proc is not None and proc.poll() is None else None


__all__ = ["Segment", "StreamRecorder", "pid_of"]
