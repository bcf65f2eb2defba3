"""The pre-roll packet ring against a real RTSP camera (tests/rtsp.py): bounded on disk, clips
cut by stream copy (H.264 MP4, index first) or with privacy masks burned in, recorded again
after the camera came back, and a separate recorder for a `record_url` of its own."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edge_agent.app.recording import RingClipCutter
from edge_agent.core.backoff import Backoff
from edge_agent.core.masks import PrivacyMasks
from edge_agent.sources.packet_ring import PacketRing, RingError
from edge_agent.sources.record_only import RecordOnly
from edge_agent.sources.rtsp import RtspSource
from tests.rtsp import RtspServer, gstreamer, rtsp_server, rtsp_server_factory, wait_until
from tests.test_rtsp_source import camera

__all__ = ["gstreamer", "rtsp_server", "rtsp_server_factory"]  # fixtures used by name

KEEP_S = 4.0
SEGMENT_S = 1.0
GOP_S = 1.0  # the test camera sends a key frame every 10 frames at 10 fps
NO_MASKS = PrivacyMasks([])


@pytest.fixture
def recorded(rtsp_server: RtspServer, tmp_path: Path) -> Iterator[tuple[RtspSource, PacketRing]]:
    """A camera read with a ring (at the daemon's pacing), once it sends full-size pictures."""
    ring = PacketRing(tmp_path / "ring", keep_s=KEEP_S, max_mb=50, segment_s=SEGMENT_S)
    src = RtspSource(camera(rtsp_server.url), backoff_initial_s=0.2, backoff_max_s=1.0, ring=ring, pace_fps=5)
    src.start()
    try:
        yield src, ring
    finally:
        assert src.stop(5.0)


def filled(ring: PacketRing, seconds: float) -> bool:
    span = ring.span()
    return span is not None and span[1] - span[0] >= seconds


def frames_of(data: bytes, tmp: Path) -> list[np.ndarray]:
    path = tmp / "clip.mp4"
    path.write_bytes(data)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def probe(data: bytes, tmp: Path) -> dict[str, str]:
    path = tmp / "probe.mp4"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name,width,height",
         "-of", "default=nw=1", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines())


def test_the_ring_stays_within_keep_s_and_a_clip_is_the_cameras_own_h264(
    recorded: tuple[RtspSource, PacketRing], tmp_path: Path
) -> None:
    src, ring = recorded
    wait_until(lambda: filled(ring, KEEP_S), 20, "the ring to hold keep_s")
    time.sleep(2 * SEGMENT_S + 0.5)  # past keep_s: the oldest segments must have gone
    span = ring.span()
    assert span is not None
    # pruned by whole segments, each up to one key-frame interval longer than segment_s
    assert KEEP_S - 0.3 <= span[1] - span[0] <= KEEP_S + SEGMENT_S + GOP_S + 0.3, span
    stats = ring.stats()
    files = sorted((tmp_path / "ring").glob("seg*.ts"))
    assert len(files) == stats["segments"] and stats["failures"] == 0
    assert stats["packets_written"] >= 10 * (KEEP_S + 2)  # every packet of the 10 fps stream
    assert src.frames_paced_out > 0  # the detector's pacing does not thin out the ring

    end = src.media_now()
    start = end - 2.0
    cutter = RingClipCutter(ring, NO_MASKS, 10.0)
    assert cutter.ready(end - 0.5) and not cutter.ready(end + 60.0)
    clip = cutter.cut([(start, end)])
    assert clip is not None and cutter.cut_count == 1 and cutter.failed == 0
    info = probe(clip.data, tmp_path)
    assert info["codec_name"] == "h264" and (info["width"], info["height"]) == ("768", "576")
    assert clip.data.find(b"moov") < clip.data.find(b"mdat"), "the index must come first (faststart)"
    assert b"Lavf" not in clip.data  # no version strings: equal packets give equal bytes
    # from the key frame at or before the start, to the newest packet (the segment being written)
    assert start - GOP_S - 0.15 <= clip.start_media_s <= start + 0.05, (start, clip.start_media_s)
    assert 2.0 - 0.25 <= clip.duration_s <= 2.0 + GOP_S + 0.3, clip.duration_s
    assert abs(float(info["duration"]) - clip.duration_s) < 0.05
    frames = frames_of(clip.data, tmp_path)
    assert len(frames) == round(clip.duration_s * 10)
    assert all(f.shape == (576, 768, 3) for f in frames)
    again = cutter.cut([(start, end)])
    assert again is not None and again.data == clip.data


def test_two_parts_play_back_to_back(recorded: tuple[RtspSource, PacketRing], tmp_path: Path) -> None:
    src, ring = recorded
    wait_until(lambda: filled(ring, KEEP_S - 0.5), 20, "the ring to fill")
    end = src.media_now()
    parts = [(end - 3.4, end - 3.0), (end - 1.0, end)]
    clip = RingClipCutter(ring, NO_MASKS, 10.0).cut(parts)
    assert clip is not None
    # each part from its key frame: under the window's 3.4 s, over the parts' 1.4 s
    assert 1.4 - 0.25 <= clip.duration_s <= 1.4 + 2 * GOP_S + 0.3, clip.duration_s
    assert clip.end_media_s > end - 0.3
    frames = frames_of(clip.data, tmp_path)
    assert len(frames) == round(clip.duration_s * 10) and frames[0].shape == (576, 768, 3)


def test_a_window_the_ring_does_not_hold_is_refused_and_counted(
    recorded: tuple[RtspSource, PacketRing], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, ring = recorded
    wait_until(lambda: filled(ring, 1.0), 20, "packets in the ring")
    with pytest.raises(RingError, match="not in the ring"):
        ring.copy([(-30.0, -20.0)], tmp_path / "x.mp4")
    cutter = RingClipCutter(ring, NO_MASKS, 10.0)
    assert cutter.cut([(src.media_now() + 30, src.media_now() + 40)]) is None
    assert cutter.failed == 1 and cutter.cut_count == 0
    assert ring.stats()["failures"] == 2
    assert "not in the ring" in caplog.text


def test_max_mb_bounds_the_ring_on_disk(rtsp_server: RtspServer, tmp_path: Path) -> None:
    max_mb = 0.4  # the test camera sends about 0.25 MB a second: max_mb, not keep_s, binds
    ring = PacketRing(tmp_path / "ring", keep_s=60.0, max_mb=max_mb, segment_s=SEGMENT_S)
    src = RtspSource(camera(rtsp_server.url), ring=ring)
    src.start()
    try:
        wait_until(lambda: ring.stats()["packets_written"] >= 60, 20, "six seconds of packets")
        sizes = [p.stat().st_size for p in (tmp_path / "ring").glob("seg*.ts")]
        # the segment being written is never removed; every closed one counts
        assert sum(sizes) - max(sizes) <= max_mb * 1024 * 1024, sizes
        span = ring.span()
        assert span is not None and span[1] - span[0] < 4.0
    finally:
        assert src.stop(5.0)


MASK = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]  # the top left quarter


def test_a_masked_cameras_clip_is_black_inside_the_mask_in_every_frame(
    recorded: tuple[RtspSource, PacketRing], tmp_path: Path
) -> None:
    src, ring = recorded
    wait_until(lambda: filled(ring, 3.0), 20, "the ring to fill")
    end = src.media_now()
    cutter = RingClipCutter(ring, PrivacyMasks([MASK]), 10.0)
    clip = cutter.cut([(end - 2.0, end)])
    assert clip is not None, "a masked clip"
    plain = RingClipCutter(ring, NO_MASKS, 10.0).cut([(end - 2.0, end)])
    assert plain is not None and plain.data != clip.data
    assert abs(clip.duration_s - plain.duration_s) < 0.15 and clip.start_media_s == plain.start_media_s
    frames = frames_of(clip.data, tmp_path)
    assert len(frames) == len(frames_of(plain.data, tmp_path))
    inside = np.zeros((576, 768), np.uint8)
    cv2.fillPoly(inside, [np.array([[x * 768, y * 576] for x, y in MASK], np.int32)], 255)
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8)) > 0  # chroma is shared by 2x2 pixels
    for i, image in enumerate(frames):
        assert int(image[inside].max()) <= 16, i  # black, up to the encoder's rounding
        assert float(image[~inside].mean()) > 40, i  # the rest of the walkway is there


def test_a_masked_clip_that_cannot_be_encoded_is_not_sent_unmasked(
    recorded: tuple[RtspSource, PacketRing], tmp_path: Path
) -> None:
    src, ring = recorded
    wait_until(lambda: filled(ring, 1.5), 20, "the ring to fill")
    cutter = RingClipCutter(ring, PrivacyMasks([MASK]), 10.0)
    cutter.ffmpeg = str(tmp_path / "no-ffmpeg")  # the encoder is gone (a broken install)
    assert cutter.cut([(src.media_now() - 1.0, src.media_now())]) is None
    assert cutter.failed == 1


def test_a_camera_killed_and_restarted_is_recorded_again(rtsp_server: RtspServer, tmp_path: Path) -> None:
    ring = PacketRing(tmp_path / "ring", keep_s=20.0, max_mb=50, segment_s=SEGMENT_S)
    src = RtspSource(camera(rtsp_server.url), backoff_initial_s=0.2, backoff_max_s=1.0, ring=ring)
    src.start()
    try:
        wait_until(lambda: filled(ring, 1.5), 20, "packets before the kill")
        rtsp_server.kill()
        wait_until(lambda: src.status == "offline", 10, "offline after the kill")
        span = ring.span()
        assert span is not None
        rtsp_server.start()
        wait_until(lambda: (s := ring.span()) is not None and s[1] > span[1] + 2.5, 20, "packets again")
        assert ring.stats()["connections"] >= 2
        end = src.media_now()
        # a window across the gap takes the connection holding most of it (the new one)
        clip = RingClipCutter(ring, NO_MASKS, 10.0).cut([(span[1] - 1.0, end)])
        assert clip is not None and clip.start_media_s > span[1]
        assert len(frames_of(clip.data, tmp_path)) == round(clip.duration_s * 10)
        before = RingClipCutter(ring, NO_MASKS, 10.0).cut([(span[1] - 1.0, span[1])])
        assert before is not None and before.start_media_s <= span[1] - 1.0
    finally:
        assert src.stop(5.0)


# --- a record_url of its own ----------------------------------------------------------------


def test_a_separate_record_url_fills_its_ring_and_a_wrong_password_is_plain(
    rtsp_server_factory: Callable[..., RtspServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = rtsp_server_factory(user="admin", password="s3cret-pw")
    t0 = time.monotonic()
    ring = PacketRing(tmp_path / "ring", keep_s=KEEP_S, max_mb=50, segment_s=SEGMENT_S)
    good = RecordOnly(server.url_with(), ring, lambda: time.monotonic() - t0, name="cam-a").start()
    bad_ring = PacketRing(tmp_path / "bad", keep_s=KEEP_S, max_mb=50, segment_s=SEGMENT_S)
    bad = RecordOnly(
        server.url_with(password="Wr0ngPass"),
        bad_ring,
        time.monotonic,
        name="cam-b",
        backoff=Backoff(0.2, 1.0),
    ).start()
    try:
        wait_until(lambda: filled(ring, 2.5), 20, "the recorder's ring to fill")
        assert good.status == "online" and good.packets >= 25
        now = time.monotonic() - t0
        clip = RingClipCutter(ring, NO_MASKS, 10.0).cut([(now - 1.5, now)])
        assert clip is not None and (probe(clip.data, tmp_path)["width"]) == "768"

        wait_until(lambda: bad.reconnects >= 1, 10, "the wrong password retried")
        error = bad.last_error or ""
        assert bad.status == "offline" and "401" in error and "admin" in error, error
        assert bad_ring.span() is None
        for secret in ("Wr0ngPass", "s3cret-pw"):
            assert secret not in error and secret not in repr(bad) and secret not in repr(good)
            assert secret not in caplog.text, "a password reached the log"
    finally:
        assert good.stop(5.0) and bad.stop(5.0)


# --- the ring alone, fed from files (exact media times, no camera) ------------------------------


def h264_file(path: Path, size: str, seconds: float = 6.0, bframes: int = 0) -> Path:
    """A test pattern at 10 fps with a key frame every 5 frames (0.5 s), no B-frames by default."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=10",
         "-t", f"{seconds:g}", "-c:v", "libx264", "-g", "5", "-bf", str(bframes), "-pix_fmt", "yuv420p",
         str(path)],
        check=True,
    )  # fmt: skip
    return path


def feed(ring: PacketRing, path: Path, start_s: float) -> float:
    """One connection: every packet of `path` at 10 per second from `start_s`; returns the last time."""
    media = start_s
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ring.begin(stream)
        for i, packet in enumerate(p for p in container.demux(stream) if p.size):
            media = start_s + i / 10
            ring.add(packet, media)
        ring.end()
    return media


def test_keep_s_holds_the_newest_seconds_and_no_more_than_one_segment_beyond(tmp_path: Path) -> None:
    ring = PacketRing(tmp_path / "ring", keep_s=3.0, max_mb=50, segment_s=1.0)
    last = feed(ring, h264_file(tmp_path / "a.mp4", "160x120", 10.0), 100.0)
    span = ring.span()
    assert span is not None and span[1] == last == 109.9
    assert 3.0 <= span[1] - span[0] <= 4.0 + 0.5, span  # pruned by whole segments (1 s to the next key)
    assert ring.stats()["packets_written"] == 100 and ring.stats()["segments"] == len(
        list((tmp_path / "ring").glob("seg*.ts"))
    )


def test_a_part_across_a_reconnection_takes_the_connection_holding_most_of_it(tmp_path: Path) -> None:
    ring = PacketRing(tmp_path / "ring", keep_s=30.0, max_mb=50, segment_s=1.0)
    clip = h264_file(tmp_path / "a.mp4", "160x120")
    feed(ring, clip, 0.0)  # 0.0 .. 5.9
    feed(ring, clip, 8.0)  # 8.0 .. 13.9, after a 2-s outage
    assert ring.stats()["connections"] == 2
    first, plays = ring.copy([(5.0, 11.0)], tmp_path / "across.mp4")  # 0.9 s before, 3 s after
    assert first == 8.0 and abs(plays - 3.1) < 0.01  # 8.0 .. 11.0, both ends included
    first, plays = ring.copy([(2.2, 9.0)], tmp_path / "before.mp4")  # 3.7 s before, 1 s after
    assert first == 2.0 and abs(plays - 4.0) < 0.01  # from the key frame at 2.0 to 5.9
    with pytest.raises(RingError, match="not in the ring"):
        ring.copy([(6.2, 7.8)], tmp_path / "gap.mp4")  # the outage itself


def test_parts_of_a_camera_that_changed_size_keep_the_last_ones(tmp_path: Path) -> None:
    ring = PacketRing(tmp_path / "ring", keep_s=30.0, max_mb=50, segment_s=1.0)
    feed(ring, h264_file(tmp_path / "small.mp4", "160x120"), 0.0)
    feed(ring, h264_file(tmp_path / "large.mp4", "320x240"), 10.0)
    dest = tmp_path / "two.mp4"
    first, plays = ring.copy([(1.0, 2.0), (12.0, 13.0)], dest)
    assert first == 12.0 and abs(plays - 1.1) < 0.01
    frames = frames_of(dest.read_bytes(), tmp_path)
    assert len(frames) == 11 and all(f.shape == (240, 320, 3) for f in frames)
    first, plays = ring.copy([(10.5, 11.0), (13.0, 13.5)], dest)  # one connection: both parts
    assert first == 10.5 and abs(plays - 1.2) < 0.01


def test_a_clip_over_many_segments_is_the_same_when_its_later_parts_are_not_probed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part's segments are demuxed as one stream, and only the clip's first part is probed
    (about 10 ms each): the MP4 is byte for byte the one probing every part gives, at the camera's
    size, with every packet of both windows once."""
    ring = PacketRing(tmp_path / "ring", keep_s=30.0, max_mb=50, segment_s=1.0)
    feed(ring, h264_file(tmp_path / "a.mp4", "160x120", 12.0), 100.0)
    window = [(101.2, 105.3), (106.2, 110.7)]  # five segments each
    assert ring.copy(window, tmp_path / "fast.mp4") == (101.0, pytest.approx(9.2))
    monkeypatch.setattr("edge_agent.sources.packet_ring._NO_PROBE", {})
    ring.copy(window, tmp_path / "probed.mp4")
    fast = (tmp_path / "fast.mp4").read_bytes()
    assert fast == (tmp_path / "probed.mp4").read_bytes()
    info = probe(fast, tmp_path)
    assert (info["width"], info["height"]) == ("160", "120")
    # 101.0 (the key frame before 101.2) to 105.3, then 106.0 to 110.7, at 10 per second
    assert len(frames_of(fast, tmp_path)) == 44 + 48


def test_a_segment_with_a_torn_packet_at_its_end_does_not_shift_the_next_ones(tmp_path: Path) -> None:
    """A write that failed half way leaves part of a packet at a segment's end. The segments of a
    part are demuxed as one stream, and each packet counts in the segment its bytes begin in, so
    the torn one stays in its segment, out of the clip, and the next segments' packets are the ones
    their index says."""
    ring = PacketRing(tmp_path / "ring", keep_s=30.0, max_mb=50, segment_s=1.0)
    feed(ring, h264_file(tmp_path / "a.mp4", "160x120", 6.0), 100.0)
    ring.copy([(100.0, 105.9)], tmp_path / "whole.mp4")
    ring.copy([(102.3, 104.4)], tmp_path / "later.mp4")  # from a key frame in a segment after the torn one
    segments = sorted((tmp_path / "ring").glob("seg*.ts"))
    assert len(segments) >= 4
    donor = segments[-1].read_bytes()
    with segments[1].open("ab") as fh:
        fh.write(donor[2 * 188 : 5 * 188])  # after the tables: the start of a key frame's packet, cut
    ring.copy([(100.0, 105.9)], tmp_path / "torn.mp4")
    assert (tmp_path / "torn.mp4").read_bytes() == (tmp_path / "whole.mp4").read_bytes()
    ring.copy([(102.3, 104.4)], tmp_path / "later-torn.mp4")
    assert (tmp_path / "later-torn.mp4").read_bytes() == (tmp_path / "later.mp4").read_bytes()
    assert len(frames_of((tmp_path / "later.mp4").read_bytes(), tmp_path)) == 25  # 102.0 to 104.4


def test_a_stream_with_b_frames_gives_clips_across_its_first_segments(tmp_path: Path) -> None:
    """B-frames start a stream at a negative decoding time: every segment of the connection is
    shifted alike, so a clip joins the first segment to the next ones without going back."""
    ring = PacketRing(tmp_path / "ring", keep_s=30.0, max_mb=50, segment_s=1.0)
    feed(ring, h264_file(tmp_path / "b.mp4", "160x120", 6.0, bframes=2), 100.0)
    first, plays = ring.copy([(100.0, 103.0)], tmp_path / "clip.mp4")
    assert ring.stats()["failures"] == 0
    assert first == 100.0 and plays == pytest.approx(3.1)
    data = (tmp_path / "clip.mp4").read_bytes()
    assert len(frames_of(data, tmp_path)) == 31  # 100.0 to 103.0 at 10 per second
    with av.open(str(tmp_path / "clip.mp4")) as clip:
        dts = [p.dts for p in clip.demux(clip.streams.video[0]) if p.size]
    assert dts == sorted(set(dts)) and len(dts) == 31
