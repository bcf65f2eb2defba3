"""Evidence clips: the video around an incident, as an H.264 MP4 a browser plays.

The window of a clip (`clip_window`) is chosen from the incident:

- `left_object` with a known owner: from `pre_s` before the owner was first seen near the
  object until `post_s` after the alert, so it shows the owner bringing the object,
  putting it down and leaving (the rule fires only once the owner has gone:
  `min_static_s` after the object stood still and nobody is near it);
- every other kind: from `pre_s` before the incident began until `post_s` after the alert.

A window longer than `max_s` becomes two parts in one file: the first seconds (the act)
and the last `pre_s + post_s` around the alert (at most half of `max_s`); the clip jumps
between them (documented cut). Replay cuts the clip when the incident starts (the file
holds what comes after); the live agent cuts it once its recorder has passed the end of
the window and sends it with the incident's next phase (`ClipSchedule`, clip_schedule.py).

`FileClipCutter` cuts clips from a recorded file (replay) with FFmpeg: without a privacy
mask by stream copy (no re-encoding: each part starts at the key frame at or before its
start, so a clip may start up to one key-frame interval early), with masks by decoding
the window, blacking the masks out and encoding H.264 again (x264, one thread: the same
bytes on every run). Either way the MP4 has its index first (faststart) and no
encoder or muxer version strings (bitexact), so a replay run twice cuts byte-identical
clips with the same FFmpeg build.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge_agent.core.config import RuleClipConfig
from edge_agent.core.masks import PrivacyMasks
from edge_agent.core.types import Frame, OwnerSighting

logger = logging.getLogger(__name__)

FFMPEG_TIMEOUT_S = 120.0
MASKED_CRF = 26  # x264 quality of a re-encoded (masked) clip


@dataclass(frozen=True)
class ClipSettings:
    pre_s: float = 10.0
    post_s: float = 10.0
    max_s: float = 120.0
    enabled: bool = True

    def for_rule(self, rule: RuleClipConfig | None) -> ClipSettings:
        """A rule's own settings over these (what it leaves out stays)."""
        if rule is None:
            return self
        return ClipSettings(
            self.pre_s if rule.pre_s is None else rule.pre_s,
            self.post_s if rule.post_s is None else rule.post_s,
            self.max_s if rule.max_s is None else rule.max_s,
            self.enabled and rule.enabled,
        )


class ClipCutter(Protocol):
    """Where clips come from: a recorded file (replay) or a camera's recorder ring (live)."""

    # True: the video after the alert is still to come (a recorder): the clip is cut once
    # `ready(end)` says the recorder has passed the end of its window.
    live: bool
    cut_count: int
    failed: int

    def ready(self, end_s: float) -> bool: ...

    def cut(self, parts: list[tuple[float, float]]) -> Clip | None: ...


@dataclass(frozen=True)
class Clip:
    """A cut clip: its MP4 bytes, the media times it spans (its first frame's, the end of its
    last) and how long it plays (the same span for one part; less for two, by the jump)."""

    data: bytes
    start_media_s: float
    end_media_s: float
    duration_s: float

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def clip_window(
    kind: str, since_s: float, alert_s: float, owner: OwnerSighting | None, settings: ClipSettings
) -> list[tuple[float, float]]:
    """The parts (start, end) in media seconds of an incident's clip, in order (one or two)."""
    began = owner.arrived_s if kind == "left_object" and owner is not None else since_s
    start = max(0.0, min(began, alert_s) - settings.pre_s)
    end = alert_s + settings.post_s
    if end - start <= settings.max_s:
        return [(start, end)]
    tail = min(settings.pre_s + settings.post_s, settings.max_s / 2.0)
    return [(start, start + settings.max_s - tail), (end - tail, end)]


class ClipError(RuntimeError):
    """A clip could not be cut; the message says why."""


class FileClipCutter:
    """Cuts clips out of one recorded video file (replay): all of it is there at once."""

    live = False

    def __init__(self, path: str | Path, masks: PrivacyMasks, fps: float) -> None:
        self.path = Path(path)
        self.masks = masks
        self.fps = fps
        self.ffmpeg = shutil.which("ffmpeg")
        self.ffprobe = shutil.which("ffprobe")
        self._keys: list[float] | None = None
        self._first_pts = 0.0
        self.cut_count = 0
        self.failed = 0

    def available(self) -> bool:
        return self.ffmpeg is not None and self.ffprobe is not None

    def ready(self, end_s: float) -> bool:
        return True

    def cut(self, parts: list[tuple[float, float]]) -> Clip | None:
        """The clip of `parts`; None (logged, counted) when FFmpeg is missing or fails."""
        if not self.available():
            self.failed += 1
            logger.warning("no clip: ffmpeg and ffprobe are needed to cut clips (apt install ffmpeg)")
            return None
        try:
            clip = self._masked(parts) if self.masks.relative else self._copied(parts)
        except ClipError as err:
            self.failed += 1
            logger.warning("no clip from %s: %s", self.path, err)
            return None
        self.cut_count += 1
        return clip

    # --- stream copy --------------------------------------------------------------

    def _key_frames(self) -> list[float]:
        """Media times of the video's key frames (the first frame is at 0)."""
        if self._keys is None:
            assert self.ffprobe is not None
            out = _run(
                [self.ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                 "packet=pts_time,flags", "-of", "csv=p=0", str(self.path)],
            ).decode()  # fmt: skip
            packets = []
            for line in out.splitlines():
                pts, _, flags = line.partition(",")
                if pts and pts != "N/A":
                    packets.append((float(pts), "K" in flags))
            if not packets:
                raise ClipError(f"{self.path}: no video packets")
            self._first_pts = min(p for p, _ in packets)
            self._keys = sorted(p - self._first_pts for p, key in packets if key)
        return self._keys

    def _copied(self, parts: list[tuple[float, float]]) -> Clip:
        keys = self._key_frames()
        lines = []
        starts = []
        for a, b in parts:
            k = keys[max(0, bisect_right(keys, a + 1e-6) - 1)]
            starts.append(k)
            lines += [f"file '{self.path.resolve()}'", f"inpoint {k + self._first_pts:.6f}",
                      f"outpoint {b + self._first_pts + 0.5 / self.fps:.6f}"]  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="edge-agent-clip-") as tmp:
            listing = Path(tmp) / "parts.txt"
            listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
            out = Path(tmp) / "clip.mp4"
            assert self.ffmpeg is not None
            _run(
                [self.ffmpeg, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                 "-map", "0:v:0", "-c", "copy", "-an", *_MP4_FLAGS, str(out)],
            )  # fmt: skip
            return make_clip(out.read_bytes(), starts[0], parts, self._duration(out), self.fps)

    def _duration(self, clip: Path) -> float:
        """How long `clip` plays (what a browser's <video>.duration says), in seconds."""
        assert self.ffprobe is not None
        return probe_duration(self.ffprobe, clip)

    # --- re-encoded with the masks burned in ------------------------------------------

    def _masked(self, parts: list[tuple[float, float]]) -> Clip:
        with tempfile.TemporaryDirectory(prefix="edge-agent-clip-") as tmp:
            out = Path(tmp) / "clip.mp4"
            assert self.ffmpeg is not None
            encode_masked(self.path, parts, self.masks, self.fps, self.ffmpeg, out)
            return make_clip(out.read_bytes(), parts[0][0], parts, self._duration(out), self.fps)


def probe_duration(ffprobe: str, clip: Path) -> float:
    """How long `clip` plays (what a browser's <video>.duration says), in seconds."""
    cmd = [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(clip)]
    out = _run(cmd)
    try:
        return float(out.decode().strip())
    except ValueError as err:
        raise ClipError(f"ffprobe gave no duration for the cut clip: {out[:80]!r}") from err


def encode_masked(
    src: Path, parts: list[tuple[float, float]], masks: PrivacyMasks, fps: float, ffmpeg: str, out: Path
) -> None:
    """Write to `out` the frames of `src` within `parts` (seconds of `src`, frame i at i / fps),
    every mask blacked out, encoded as H.264 MP4 at `fps` (x264, one thread: the same bytes
    on every run)."""
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise ClipError(f"{src}: cannot open the video")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    proc = subprocess.Popen(
        [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}",
         "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf",
         str(MASKED_CRF), "-pix_fmt", "yuv420p", "-threads", "1", "-x264-params", "threads=1",
         *_MP4_FLAGS, str(out)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    try:
        for a, b in parts:
            first, last = round(a * fps), round(b * fps)
            cap.set(cv2.CAP_PROP_POS_FRAMES, first)
            for index in range(first, last + 1):
                ok, image = cap.read()
                if not ok:
                    break
                still = Frame("clip", index, index / fps, 0.0, np.asarray(image, np.uint8))
                frame = masks.apply(still)
                proc.stdin.write(np.ascontiguousarray(frame.image).tobytes())
    except BrokenPipeError:
        pass
    finally:
        cap.release()
        proc.stdin.close()
    err = proc.stderr.read() if proc.stderr is not None else b""
    if proc.wait(FFMPEG_TIMEOUT_S) != 0:
        raise ClipError(f"ffmpeg could not encode the clip: {err.decode(errors='replace')[-300:]}")


def make_clip(
    data: bytes, start: float, parts: list[tuple[float, float]], plays_s: float, fps: float
) -> Clip:
    """The Clip of an MP4 whose first frame is at media time `start` and that plays `plays_s`."""
    end = start + plays_s if len(parts) == 1 else parts[-1][1] + 1.0 / fps
    return Clip(data, start, end, plays_s)


# no creation times, no version strings: the same input gives the same bytes; index first
_MP4_FLAGS = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
              "-movflags", "+faststart", "-f", "mp4"]  # fmt: skip


def _run(cmd: list[str]) -> bytes:
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ClipError(f"{Path(cmd[0]).name} failed: {err}") from err
    if done.returncode != 0:
        raise ClipError(f"{Path(cmd[0]).name} failed: {done.stderr.decode(errors='replace')[-300:]}")
    return done.stdout
