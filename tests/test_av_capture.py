"""RtspSource reading through PyAV (a camera with a pre-roll ring) against a real GStreamer RTSP
server: the same frames, statuses, reconnects and plain errors as the OpenCV path
(tests/test_rtsp_source.py), with every packet in the ring."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.sources import SourceError
from edge_agent.sources.av_capture import open_av_capture
from edge_agent.sources.packet_ring import PacketRing
from edge_agent.sources.rtsp import FPS_WINDOW_S, RtspSource
from tests.broker import free_port
from tests.rtsp import FIXTURE_VIDEO, RtspServer, gstreamer, rtsp_server, rtsp_server_factory, wait_until
from tests.test_rtsp_source import OPEN_TIMEOUT_S, READ_TIMEOUT_S, STALL_S, camera

__all__ = ["gstreamer", "rtsp_server", "rtsp_server_factory"]  # fixtures used by name

logger = logging.getLogger(__name__)


@pytest.fixture
def make_source(tmp_path: Path) -> Iterator[Callable[..., tuple[RtspSource, PacketRing]]]:
    made: list[RtspSource] = []

    def make(url: str, **kwargs: Any) -> tuple[RtspSource, PacketRing]:
        ring = PacketRing(tmp_path / f"ring{len(made)}", keep_s=10.0, max_mb=50, segment_s=1.0)
        kwargs.setdefault("backoff_initial_s", 0.2)
        kwargs.setdefault("backoff_max_s", 2.0)
        src = RtspSource(camera(url), ring=ring, **kwargs)
        made.append(src)
        src.start()
        return src, ring

    yield make
    for src in made:
        assert src.stop(READ_TIMEOUT_S + 2.0), f"{src!r} did not stop"


def full_size(src: RtspSource, timeout_s: float = 5.0) -> Any:
    """The first 768x576 frame: the test camera sends small black pictures for its first moments."""
    last = -1
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = src.wait_latest(last, timeout_s=1.0)
        if frame is not None:
            if (frame.width, frame.height) == (768, 576):
                return frame
            last = frame.index
    pytest.fail(f"no full-size frame within {timeout_s} s: {src.status} {src.last_error}")


def test_frames_arrive_and_every_packet_goes_to_the_ring(
    rtsp_server: RtspServer, make_source: Callable[..., tuple[RtspSource, PacketRing]]
) -> None:
    src, ring = make_source(rtsp_server.url)
    first = full_size(src)
    assert first.image.dtype == np.uint8 and first.image.shape == (576, 768, 3)
    assert src.status == "online" and abs(first.wall_ts - time.time()) < 5.0
    frames = [first]
    until = time.monotonic() + FPS_WINDOW_S + 1.0
    while time.monotonic() < until:
        frame = src.wait_latest(frames[-1].index, timeout_s=3.0)
        assert frame is not None, f"frames stopped: {src.last_error}"
        assert frame.image.shape == (576, 768, 3)
        frames.append(frame)
    indexes = [f.index for f in frames]
    media = [f.media_s for f in frames]
    assert indexes == sorted(set(indexes)) and media == sorted(media)
    assert 7.0 <= src.fps <= 13.0, f"the server sends 10 fps, measured {src.fps:.1f}"
    assert src.reconnects == 0 and src.stalls == 0
    # one packet per frame (H.264 without B-frames); the ring's clock is the frames' clock
    assert abs(ring.stats()["packets_written"] - src.frames_read) <= 3, (ring.stats(), src.frames_read)
    span = ring.span()
    assert span is not None and abs(span[1] - frames[-1].media_s) < 0.5


def test_pace_fps_hands_over_only_frames_due(
    rtsp_server: RtspServer, make_source: Callable[..., tuple[RtspSource, PacketRing]]
) -> None:
    src, ring = make_source(rtsp_server.url, pace_fps=5.0)
    frames = [full_size(src)]
    until = time.monotonic() + FPS_WINDOW_S + 1.0
    while time.monotonic() < until:
        frame = src.wait_latest(frames[-1].index, timeout_s=3.0)
        assert frame is not None, f"frames stopped: {src.last_error}"
        frames.append(frame)
    assert 7.0 <= src.fps <= 13.0, f"every frame of the 10 fps stream is read, measured {src.fps:.1f}"
    steady = [f for f in frames if f.media_s >= frames[0].media_s + 2.0]
    handed = (len(steady) - 1) / (steady[-1].media_s - steady[0].media_s)
    assert 4.0 <= handed <= 5.5, f"handed over {handed:.2f} frames/s at pace_fps 5"
    assert src.frames_paced_out > 0
    assert ring.stats()["packets_written"] >= src.frames_read - 3  # paced-out frames are recorded too


def test_kill_then_restart_on_the_same_port(
    rtsp_server: RtspServer, make_source: Callable[..., tuple[RtspSource, PacketRing]]
) -> None:
    src, ring = make_source(rtsp_server.url)
    before = full_size(src)
    rtsp_server.kill()
    wait_until(lambda: src.status != "online", 5.0, "status leaves online after SIGKILL")
    assert src.status == "offline"
    assert src.last_error is not None and "127.0.0.1" in src.last_error
    wait_until(lambda: src.reconnects >= 2, 5.0, "reconnect attempts while the server is down")
    before = src.latest(-1)  # the last frame read before the kill stays in the slot
    assert before is not None
    rtsp_server.start()
    after = src.wait_latest(before.index, timeout_s=10.0)
    assert after is not None, f"no frame after the restart: {src.last_error}"
    assert src.status == "online" and after.index > before.index and after.media_s > before.media_s
    assert full_size(src).image.shape == (576, 768, 3)
    assert ring.stats()["connections"] >= 2


def test_hung_server_stalls_then_recovers(
    rtsp_server: RtspServer, make_source: Callable[..., tuple[RtspSource, PacketRing]]
) -> None:
    src, _ring = make_source(rtsp_server.url)
    assert src.wait_latest(-1, timeout_s=5.0) is not None
    rtsp_server.pause()
    took = wait_until(
        lambda: src.status == "stalled", STALL_S + READ_TIMEOUT_S + 1.0, "stalled after SIGSTOP"
    )
    assert took >= STALL_S - 0.5 and src.stalls == 1
    # PyAV's read timeout ends the blocked read; the fresh open then waits out its own timeout.
    wait_until(lambda: src.reconnects >= 1, READ_TIMEOUT_S + 1.5, "a reopen after the hung read")
    wait_until(lambda: src.status == "offline", OPEN_TIMEOUT_S + 1.5, "offline after the open timeout")
    assert "no answer within open_timeout_s" in (src.last_error or ""), src.last_error
    last = src.latest(-1)
    assert last is not None
    rtsp_server.resume()
    after = src.wait_latest(last.index, timeout_s=OPEN_TIMEOUT_S + READ_TIMEOUT_S + 5.0)
    assert after is not None, f"no frame after SIGCONT: {src.status} {src.last_error}"
    wait_until(lambda: src.status == "online", 2.0, "online after SIGCONT")
    assert src.stalls == 1


def test_open_failures_are_plain_and_never_show_the_password(
    rtsp_server_factory: Callable[..., RtspServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = rtsp_server_factory(user="admin", password="s3cret-pw")
    ring = PacketRing(tmp_path / "ring", keep_s=5.0, max_mb=10)
    with pytest.raises(SourceError) as wrong:
        open_av_capture(server.url_with(password="Wr0ngPass"), 3.0, 3.0, ring, time.monotonic)
    message = str(wrong.value)
    assert "401" in message and "password" in message and "admin:***@" in message, message
    with pytest.raises(SourceError, match="404") as path:
        open_av_capture(server.url_with().replace("/cam", "/nosuch"), 3.0, 3.0, ring, time.monotonic)
    with pytest.raises(SourceError, match="refused"):
        open_av_capture(f"rtsp://u:s3cret-pw@127.0.0.1:{free_port()}/cam", 3.0, 3.0, None, time.monotonic)
    with pytest.raises(SourceError, match="no such file"):
        open_av_capture(str(tmp_path / "missing.mp4"), 3.0, 3.0, None, time.monotonic)
    for secret in ("Wr0ngPass", "s3cret-pw"):
        assert secret not in message and secret not in str(path.value)
        assert secret not in caplog.text, "a password reached the log"
    assert ring.span() is None  # nothing was opened, nothing recorded
    good = open_av_capture(server.url_with(), 3.0, 3.0, ring, time.monotonic)
    try:
        assert good.grab() and good.retrieve()[0] and good.get(cv2.CAP_PROP_FPS) == 10.0
    finally:
        good.release()


def test_a_file_loops_past_its_end(
    tmp_path: Path, make_source: Callable[..., tuple[RtspSource, PacketRing]]
) -> None:
    clip = tmp_path / "two-seconds.mp4"  # 20 frames of H.264 at 10 fps
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(FIXTURE_VIDEO), "-frames:v", "20", "-c", "copy", str(clip)],
        check=True,
    )
    src, ring = make_source(f"file://{clip}")
    wait_until(lambda: src.frames_read >= 45, 10.0, "frames past the file's end twice")
    assert src.status == "online" and src.reconnects == 0
    assert 7.0 <= src.fps <= 13.0, f"paced at the file's own 10 fps, measured {src.fps:.1f}"
    frame = src.latest(-1)
    assert frame is not None and frame.image.shape == (576, 768, 3)
    assert ring.stats()["connections"] >= 3  # each loop starts the file's timestamps again
    assert ring.stats()["failures"] == 0


def test_a_corrupt_packet_is_skipped_not_raised(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"  # MP4: a NAL length garbled by bad bytes is a decoder error
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(FIXTURE_VIDEO), "-frames:v", "30", "-c", "copy",
         "-movflags", "+faststart", str(clip)],
        check=True,
    )  # fmt: skip
    data = bytearray(clip.read_bytes())
    mdat = data.find(b"mdat")
    rng = np.random.default_rng(7)
    third = (len(data) - mdat) // 3
    for at in range(mdat + third, mdat + 2 * third, 4000):  # garbage across the middle third
        data[at : at + 600] = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    clip.write_bytes(bytes(data))
    cap = open_av_capture(str(clip), 3.0, 3.0, None, time.monotonic)
    try:
        frames = 0
        while cap.grab():
            ok, image = cap.retrieve()
            assert ok and image is not None and image.shape == (576, 768, 3)
            frames += 1
    finally:
        cap.release()
    assert cap.decode_errors >= 1, "the garbage was meant to break a packet"
    assert 20 <= frames < 30, frames  # the broken packets are skipped, the rest decode


def test_the_recording_reader_sees_the_pictures_the_plain_reader_sees() -> None:
    """A camera that records is read through PyAV, one that does not through OpenCV: the
    detector must get the same pictures either way, frame for frame, all through the clip
    (the PyAV reader keeps one converter for all of a camera's frames)."""
    cap = open_av_capture(str(FIXTURE_VIDEO), 3.0, 3.0, None, time.monotonic)
    plain = cv2.VideoCapture(str(FIXTURE_VIDEO))
    try:
        frames = 0
        while cap.grab():
            ok, image = cap.retrieve()
            ok_plain, expected = plain.read()
            assert ok and ok_plain and image is not None
            assert image.shape == expected.shape == (576, 768, 3)
            assert np.array_equal(image, expected), f"frame {frames} differs"
            frames += 1
        assert frames == 400 and not plain.grab()
    finally:
        cap.release()
        plain.release()
