"""The pre-roll ring of one camera's encoded stream: packets on disk, clips cut by stream copy.

The reader that demuxes the camera (`av_capture.py`) hands every video packet to `add()`
with the media time it arrived at (the reader's steady clock, the clock of `Frame.media_s`),
so a clip is cut by the same times the rules see. Packets are never decoded or re-encoded:

- `begin(stream)` at each connection (its codec parameters may differ from the last one),
  `add(packet, media_s)` per video packet, `end()` at disconnect;
- packets go into MPEG-TS segment files (PyAV's muxer, stream copy), each starting at a key
  frame and about `segment_s` long; every packet is flushed to the file as it is written,
  so a cut can include the newest packet; a connection whose stream starts at a negative
  decoding time (B-frames) has all its timestamps moved up alike, so its segments join;
- the index (per segment: connection, media time of every packet, which are key frames,
  bytes) is kept in memory, a few kB per camera; the segment files are the packets;
- the oldest segments go as soon as the rest still holds `keep_s` seconds (so the ring
  holds `keep_s` to `keep_s` plus one segment), or when the files pass `max_mb`.

`copy(parts, dest)` writes one MP4 (stream copy, index first, no creation time or version
strings) with each part from the key frame at or before its start to the last packet at or
before its end; parts are joined back to back (the clip jumps between them). A part is taken
from one connection: when the camera reconnected inside a part, the connection holding most
of the part is used, and a part that starts before the ring's oldest packet starts there
(the clip is shorter, not refused). Parts whose connections have different codec parameters
cannot share one MP4 track: the earlier ones are left out. A part the ring holds nothing of
raises `RingError`. The ring lives for one run: `PacketRing()` empties its folder.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

logger = logging.getLogger(__name__)

_MB = 1024 * 1024
SEGMENT_GLOB = "seg*.ts"
# Open a segment without probing its stream: enough to demux its packets, not for their codec's
# parameters (the picture size is not read).
_NO_PROBE = {"probesize": "32", "analyzeduration": "0"}


class RingError(RuntimeError):
    """A clip the ring cannot give (the window is not in it, or writing the MP4 failed)."""


@dataclass(frozen=True)
class _Connection:
    """One connection's codec parameters; equal ones can share one MP4 track."""

    number: int = field(compare=False)
    codec: str
    width: int
    height: int
    extradata: bytes


@dataclass
class _Segment:
    path: Path
    connection: _Connection
    media: list[float] = field(default_factory=list)  # arrival time of each packet, in order
    keys: list[int] = field(default_factory=list)  # indexes of key-frame packets
    size: int = 0

    @property
    def first_s(self) -> float:
        return self.media[0]

    @property
    def last_s(self) -> float:
        return self.media[-1]


@dataclass(frozen=True)
class _Pick:
    """The packets of one part: segments (with the packet counts they had) and a range over them."""

    segments: list[tuple[_Segment, int]]
    first: int  # packet index in the first segment
    last: int  # packet index in the last segment (inclusive)
    first_media_s: float


class PacketRing:
    def __init__(self, folder: str | Path, keep_s: float, max_mb: float, segment_s: float = 2.0) -> None:
        if segment_s <= 0 or keep_s < segment_s:
            raise ValueError(f"packet ring: need 0 < segment_s <= keep_s, got {segment_s} and {keep_s}")
        if max_mb <= 0:
            raise ValueError(f"packet ring: max_mb must be above 0, got {max_mb}")
        self.folder = Path(folder)
        self.keep_s = keep_s
        self.max_bytes = int(max_mb * _MB)
        self.segment_s = segment_s
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob(SEGMENT_GLOB):  # an earlier run's ring: its times mean nothing now
            old.unlink()
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []  # closed and current, oldest first
        self._current: _Segment | None = None
        self._muxer: Any = None  # the current segment's av OutputContainer
        self._out_stream: Any = None
        self._template: Any = None  # the input stream of this connection (None between connections)
        self._connection: _Connection | None = None
        self._connections = 0
        self._last_ts: int | None = None
        self._shift: int | None = None  # added to this connection's timestamps (see add)
        self._next_file = 0
        self._pinned = 0  # copies reading segment files: removals wait
        self._doomed: list[Path] = []
        self.packets_written = 0
        self.packets_skipped = 0  # before the first key frame of a connection, or unmuxable
        self.cut_count = 0
        self.failures = 0

    # --- writing (the reader's thread) ---------------------------------------------------

    def begin(self, stream: Any) -> None:
        """A (re)connection: `stream` is the input av.VideoStream whose packets follow."""
        with self._lock:
            self._close_segment()
            self._template = stream
            self._new_connection()

    def end(self) -> None:
        """The connection is gone: close the segment being written."""
        with self._lock:
            self._close_segment()
            self._template = None
            self._connection = None

    def add(self, packet: Any, media_s: float) -> None:
        """One demuxed video packet, with the reader's media time when it arrived."""
        if packet.size == 0:
            return  # a demuxer's flush packet carries no data
        with self._lock:
            if self._template is None or self._connection is None:
                self.packets_skipped += 1
                return
            ts = packet.dts if packet.dts is not None else packet.pts
            if ts is not None and self._last_ts is not None and ts <= self._last_ts:
                # The camera's clock went back (or a file looped): segments of one connection
                # must have rising timestamps to join into one MP4, so this starts another.
                self._close_segment()
                self._new_connection()
            if ts is not None:
                self._last_ts = ts
            key = bool(packet.is_keyframe)
            seg = self._current
            if seg is None or (key and media_s - seg.first_s >= self.segment_s):
                if not key:
                    self.packets_skipped += 1  # nothing decodes before the first key frame
                    return
                self._close_segment()
                seg = self._open_segment()
                if seg is None:
                    self.packets_skipped += 1
                    return
            if self._shift is None:
                # A stream with B-frames starts at a negative decoding time; MPEG-TS cannot hold
                # one, so its muxer would shift that segment alone and the joins of a clip would go
                # back in time. Every segment of a connection is shifted alike instead.
                self._shift = max(0, -ts) if ts is not None else 0
            try:
                if self._shift:
                    if packet.pts is not None:
                        packet.pts += self._shift
                    if packet.dts is not None:
                        packet.dts += self._shift
                packet.stream = self._out_stream
                self._muxer.mux(packet)
            except (av.error.FFmpegError, OSError, ValueError) as err:
                self.failures += 1
                logger.warning("packet ring %s: cannot write a packet: %s", self.folder, err)
                self._close_segment()
                return
            if key:
                seg.keys.append(len(seg.media))
            seg.media.append(media_s)
            seg.size += packet.size
            self.packets_written += 1
            self._prune()

    def _new_connection(self) -> None:
        stream = self._template
        ctx = stream.codec_context
        self._connections += 1
        self._connection = _Connection(
            self._connections, ctx.name, int(ctx.width), int(ctx.height), bytes(ctx.extradata or b"")
        )
        self._last_ts = None
        self._shift = None

    def _open_segment(self) -> _Segment | None:
        assert self._connection is not None
        path = self.folder / f"seg{self._next_file:08d}.ts"
        self._next_file += 1
        try:
            # flush_packets: each packet reaches the file at once, so a cut sees the newest one
            muxer = av.open(str(path), "w", format="mpegts", container_options={"flush_packets": "1"})
            self._out_stream = muxer.add_stream_from_template(self._template)
        except (av.error.FFmpegError, OSError, ValueError) as err:
            self.failures += 1
            logger.warning("packet ring %s: cannot start a segment: %s", self.folder, err)
            return None
        self._muxer = muxer
        self._current = _Segment(path, self._connection)
        self._segments.append(self._current)
        return self._current

    def _close_segment(self) -> None:
        seg, muxer = self._current, self._muxer
        self._current = self._muxer = self._out_stream = None
        if muxer is not None:
            try:
                muxer.close()
            except (av.error.FFmpegError, OSError) as err:
                logger.debug("packet ring %s: closing a segment: %s", self.folder, err)
        if seg is not None:
            with contextlib.suppress(OSError):
                seg.size = seg.path.stat().st_size
            if not seg.media:
                self._segments.remove(seg)
                self._remove(seg.path)

    def _prune(self) -> None:
        """Drop the oldest closed segments beyond keep_s (the rest still holds it) or max_bytes."""
        newest = self._segments[-1].last_s
        total = sum(s.size for s in self._segments)
        while len(self._segments) > 1:
            oldest, after = self._segments[0], self._segments[1]
            if newest - after.first_s < self.keep_s and total <= self.max_bytes:
                break
            self._segments.pop(0)
            total -= oldest.size
            self._remove(oldest.path)

    def _remove(self, path: Path) -> None:
        if self._pinned:
            self._doomed.append(path)
            return
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    # --- reading (any thread) ------------------------------------------------------------

    def span(self) -> tuple[float, float] | None:
        """(media time of the oldest packet, of the newest), or None while the ring is empty."""
        with self._lock:
            if not self._segments:
                return None
            return self._segments[0].first_s, self._segments[-1].last_s

    def stats(self) -> dict[str, float | int]:
        with self._lock:
            segs = list(self._segments)
            return {
                "bytes": sum(s.size for s in segs),
                "segments": len(segs),
                "span_s": round(segs[-1].last_s - segs[0].first_s, 3) if segs else 0.0,
                "packets_written": self.packets_written,
                "packets_skipped": self.packets_skipped,
                "connections": self._connections,
                "cuts": self.cut_count,
                "failures": self.failures,
            }

    def copy(self, parts: list[tuple[float, float]], dest: Path) -> tuple[float, float]:
        """Write the MP4 of `parts` (media seconds) to `dest`: (first frame's media time, plays_s)."""
        if not parts:
            raise RingError("no parts to copy")
        with self._lock:
            snapshot = [(s, len(s.media)) for s in self._segments]
            self._pinned += 1
        try:
            picks = [self._pick(snapshot, a, b) for a, b in parts]
            last = picks[-1].segments[0][0].connection
            kept = [p for p in picks if p.segments[0][0].connection == last]
            if len(kept) < len(picks):
                logger.warning(
                    "packet ring %s: %d of %d parts left out (the camera's stream changed between them)",
                    self.folder,
                    len(picks) - len(kept),
                    len(picks),
                )
            plays_s = _write_mp4(kept, dest)
        except RingError:
            with self._lock:
                self.failures += 1
            raise
        except (av.error.FFmpegError, OSError, ValueError, IndexError) as err:
            with self._lock:
                self.failures += 1
            raise RingError(f"cannot write the clip: {err}") from err
        finally:
            with self._lock:
                self._pinned -= 1
                doomed, self._doomed = (self._doomed, []) if not self._pinned else ([], self._doomed)
            for path in doomed:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        with self._lock:
            self.cut_count += 1
        return kept[0].first_media_s, plays_s

    def _pick(self, snapshot: list[tuple[_Segment, int]], a: float, b: float) -> _Pick:
        if b < a:
            raise RingError(f"a part ends before it starts ({a:.2f} s to {b:.2f} s)")
        overlap: dict[int, float] = {}
        for seg, n in snapshot:
            if n and seg.media[0] <= b and seg.media[n - 1] >= a:
                lo, hi = max(a, seg.media[0]), min(b, seg.media[n - 1])
                num = seg.connection.number
                overlap[num] = overlap.get(num, 0.0) + max(hi - lo, 1e-9)
        if not overlap:
            held = [(s.media[0], s.media[n - 1]) for s, n in snapshot if n]
            have = f"{held[0][0]:.2f} s to {held[-1][1]:.2f} s" if held else "nothing yet"
            raise RingError(f"the window {a:.2f} s to {b:.2f} s is not in the ring (it holds {have})")
        number = max(overlap, key=lambda k: (overlap[k], k))
        segs = [(s, n) for s, n in snapshot if n and s.connection.number == number]
        # the segment holding the start: the last one whose first packet (a key frame) is at or before it
        begin = max(0, bisect_right([s.media[0] for s, _ in segs], a + 1e-6) - 1)
        first_seg, first_n = segs[begin]
        keys = [k for k in first_seg.keys if k < first_n]
        first = keys[max(0, bisect_right([first_seg.media[k] for k in keys], a + 1e-6) - 1)]
        chosen: list[tuple[_Segment, int]] = []
        for seg, n in segs[begin:]:
            if chosen and seg.media[0] > b:
                break
            chosen.append((seg, n))
        last_seg, last_n = chosen[-1]
        last = max(0, bisect_right(last_seg.media[:last_n], b + 1e-6) - 1)
        if len(chosen) == 1:
            last = max(last, first)
        return _Pick(chosen, first, last, first_seg.media[first])


def _write_mp4(picks: list[_Pick], dest: Path) -> float:
    """Mux the picked packets into `dest`, parts back to back; returns how long the MP4 plays."""
    # bitexact and no metadata: equal packets give equal bytes; faststart: the index comes first
    out = av.open(
        str(dest), "w", format="mp4", container_options={"movflags": "+faststart", "fflags": "+bitexact"}
    )
    try:
        writer = _Joiner(out)
        for pick in picks:
            writer.next_part()
            _copy_pick(pick, writer)
            writer.flush()
        if writer.stream is None:
            raise RingError("the ring's segments held no packet of the window")
    finally:
        out.close()
    with av.open(str(dest)) as check:
        if check.duration is None:
            raise RingError("the written clip has no duration")
        return float(check.duration) / av.time_base


def _copy_pick(pick: _Pick, writer: _Joiner) -> None:
    """Hand the packets of one part to `writer`: its segments demuxed as one stream.

    The segment files are read back to back (`_Chain`), so the demuxer opens once per part
    instead of once per segment (3-5 ms each, half of what a 20 s clip cost). A packet counts in
    the file its bytes begin in, so each segment's packets are numbered as in a file of its own.
    Only a clip's first part is probed (its stream is the MP4 track's template): probing decodes
    frames, and the later parts' packets are of the same stream.
    """
    paths = [seg.path for seg, _ in pick.segments]
    starts = [0]
    for path in paths[:-1]:  # closed segments: their sizes no longer change
        starts.append(starts[-1] + path.stat().st_size)
    last = len(paths) - 1
    probe = {} if writer.stream is None else _NO_PROBE
    with _Chain(paths) as chain, av.open(chain, format="mpegts", options=probe) as src:
        stream = src.streams.video[0]
        at, index = 0, -1
        for packet in src.demux(stream):
            if packet.size == 0:
                continue
            pos = packet.pos
            seg = at if pos is None or pos < 0 else bisect_right(starts, pos) - 1
            if seg != at:
                at, index = seg, -1
            index += 1
            lo = pick.first if at == 0 else 0
            hi = pick.last if at == last else pick.segments[at][1] - 1
            if at == last and index > hi:
                break
            if lo <= index <= hi:
                writer.add(packet, stream)


class _Chain(io.RawIOBase):
    """Files read one after the other as one stream (MPEG-TS segments join byte for byte)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._paths = list(paths)
        self._file: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._file is None:
                if not self._paths:
                    return 0
                self._file = self._paths.pop(0).open("rb")
            n = self._file.readinto(buffer)
            if n:
                return n
            self._file.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


class _Joiner:
    """Writes packets with their timestamps moved so each part follows the last without a gap.

    A packet is held until the next arrives, which gives it its duration (MPEG-TS does not
    carry one); a part's last packet lasts as long as the one before it.
    """

    def __init__(self, out: Any) -> None:
        self.out = out
        self.stream: Any = None
        self._held: Any = None
        self._offset: int | None = None
        self._next_dts = 0  # the clip starts at 0: an MP4 starting later plays a gap first
        self._step = 1

    def next_part(self) -> None:
        self._offset = None

    def add(self, packet: Any, stream: Any) -> None:
        dts = packet.dts if packet.dts is not None else packet.pts
        if dts is None:
            return
        if self.stream is None:
            self.stream = self.out.add_stream_from_template(stream)
        if self._offset is None:
            self._offset = self._next_dts - dts
        pts = packet.pts if packet.pts is not None else dts
        packet.dts, packet.pts = dts + self._offset, pts + self._offset
        if self._held is not None:
            self._step = max(1, int(packet.dts) - int(self._held.dts))
            self._write(self._step)
        self._held = packet

    def flush(self) -> None:
        if self._held is not None:
            self._write(self._step)

    def _write(self, duration: int) -> None:
        held, self._held = self._held, None
        held.duration = duration
        held.stream = self.stream
        self.out.mux(held)
        self._next_dts = int(held.dts) + duration
