"""RtspSource against a real GStreamer RTSP server: frames, kills, hangs, bad URLs, files.

Every test runs real processes on loopback ports with short timeouts (stall 2 s,
open/read 3 s, backoff 0.2 to 2 s) so a whole run stays well under a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.app.health import CameraHealth
from edge_agent.core.config import CameraConfig
from edge_agent.core.pacing import FramePacer
from edge_agent.core.types import Frame
from edge_agent.sources import Source
from edge_agent.sources.capture import merge_capture_options
from edge_agent.sources.probe import authorization_header, probe_rtsp
from edge_agent.sources.rtsp import FPS_WINDOW_S, RtspSource
from tests.broker import free_port
from tests.rtsp import RtspServer, gstreamer, rtsp_server, rtsp_server_factory, wait_until

__all__ = ["gstreamer", "rtsp_server", "rtsp_server_factory"]  # fixtures used by name

logger = logging.getLogger(__name__)

STALL_S = 2.0
READ_TIMEOUT_S = 3.0
OPEN_TIMEOUT_S = 3.0


def camera(url: str, cam_id: str = "cam-a") -> CameraConfig:
    return CameraConfig(
        id=cam_id,
        url=url,
        stall_s=STALL_S,
        offline_after_s=5.0,
        open_timeout_s=OPEN_TIMEOUT_S,
        read_timeout_s=READ_TIMEOUT_S,
    )


@pytest.fixture
def make_source() -> Iterator[Callable[..., RtspSource]]:
    made: list[RtspSource] = []

    def make(url: str, **kwargs: Any) -> RtspSource:
        kwargs.setdefault("backoff_initial_s", 0.2)
        kwargs.setdefault("backoff_max_s", 2.0)
        src = RtspSource(camera(url), **kwargs)
        made.append(src)
        src.start()
        return src

    yield make
    for src in made:
        # A hung read ends at the read timeout; anything longer is a reader that never stops.
        assert src.stop(READ_TIMEOUT_S + 2.0), f"{src!r} did not stop"


def short_clip(path: Path, frames: int = 10, fps: float = 20.0) -> Path:
    """A clip whose frame i is filled with the grey value 20 * i (MJPG keeps the values close)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path


def grey(frame_image: np.ndarray) -> int:
    return round(float(frame_image.mean()) / 20)


def frames_past_fps_window(src: RtspSource, first: Frame) -> list[Frame]:
    """`first` and every frame after it for a little longer than the fps window (`src.fps` then
    measures the steady stream, not the start's burst)."""
    frames = [first]
    until = time.monotonic() + FPS_WINDOW_S + 1.0
    while time.monotonic() < until:
        frame = src.wait_latest(frames[-1].index, timeout_s=3.0)
        assert frame is not None, f"frames stopped: {src.last_error}"
        frames.append(frame)
    return frames


# --- live RTSP -------------------------------------------------------------------------


def test_frames_arrive(rtsp_server: RtspServer, make_source: Callable[..., RtspSource]) -> None:
    t0 = time.monotonic()
    src = make_source(rtsp_server.url)
    first = src.wait_latest(-1, timeout_s=5.0)
    took = time.monotonic() - t0
    assert first is not None, f"no frame within 5 s: {src.last_error}"
    logger.info("first frame after %.2f s", took)
    assert (first.width, first.height) == (768, 576)
    assert first.image.dtype == np.uint8 and first.image.shape == (576, 768, 3)
    assert first.camera_id == "cam-a"
    assert src.status == "online"
    assert abs(first.wall_ts - time.time()) < 5.0

    frames = [first]
    # Read for longer than the fps window, so the burst of buffered frames a server sends at
    # the start (longer on a busy machine) has left it when the rate is checked.
    until = time.monotonic() + FPS_WINDOW_S + 1.0
    while len(frames) < 15 or time.monotonic() < until:
        frame = src.wait_latest(frames[-1].index, timeout_s=3.0)
        assert frame is not None, f"frames stopped: {src.last_error}"
        frames.append(frame)
    indexes = [f.index for f in frames]
    media = [f.media_s for f in frames]
    assert indexes == sorted(set(indexes))
    assert media == sorted(media) and media[0] >= 0
    assert src.latest(frames[-1].index) is None or src.latest(-1) is not None
    assert 7.0 <= src.fps <= 13.0, f"the server sends 10 fps, measured {src.fps:.1f}"
    assert src.frames_read >= 15 and src.reconnects == 0 and src.stalls == 0
    stats = CameraHealth(src.camera_id, 30.0).stats(src)  # what the daemon publishes
    assert stats["status"] == "online" and stats["frames_read"] >= 15


def test_pace_fps_hands_over_only_frames_due(
    rtsp_server: RtspServer, make_source: Callable[..., RtspSource]
) -> None:
    """At `pace_fps` 5 of a 10 fps stream the reader reads every frame but hands over half,
    and a pipeline pacer at the same rate takes every frame it hands over."""
    src = make_source(rtsp_server.url, pace_fps=5.0)
    first = src.wait_latest(-1, timeout_s=5.0)
    assert first is not None, f"no frame within 5 s: {src.last_error}"
    assert first.image.shape == (576, 768, 3)
    frames = frames_past_fps_window(src, first)
    assert 7.0 <= src.fps <= 13.0, f"every frame of the 10 fps stream is read, measured {src.fps:.1f}"
    steady = [f for f in frames if f.media_s >= frames[0].media_s + 2.0]  # past the start burst
    handed = (len(steady) - 1) / (steady[-1].media_s - steady[0].media_s)
    assert 4.0 <= handed <= 5.5, f"handed over {handed:.2f} frames/s at pace_fps 5"
    indexes = [f.index for f in frames]
    assert indexes == sorted(set(indexes)) and indexes[-1] - indexes[0] > len(frames)  # skipped ones count
    assert src.frames_paced_out > 0 and src.frames_read >= len(frames) + src.frames_paced_out - 1
    downstream = FramePacer(5.0)
    assert all(downstream.due(f.media_s) for f in frames), "a pacer at the same rate refused a frame"


def test_a_frame_reached_one_period_late_is_still_analysed_and_only_a_pushed_out_one_counts() -> None:
    """The worker's queue (QUEUE_FRAMES): a frame the worker reaches after the next one
    arrived is kept and handed over in order; one pushed out before any worker took it is
    dropped and counted; a snapshot's look takes nothing from the worker."""
    src = RtspSource(camera("rtsp://127.0.0.1:9/none"))  # never started: frames put in by hand
    picture = np.zeros((4, 4, 3), np.uint8)
    src._publish(picture, 1.0)
    src._publish(picture, 1.2)  # the worker is late: both wait for it
    first = src.next_frame(-1)
    assert first is not None and first.index == 0
    second = src.next_frame(first.index)
    assert second is not None and second.index == 1 and src.next_frame(second.index) is None
    assert src.frames_dropped == 0

    for t in (1.4, 1.6, 1.8):  # three while the worker is away: the oldest is pushed out
        src._publish(picture, t)
    assert src.frames_dropped == 1
    snap = src.newest()
    assert snap is not None and snap.index == 4
    third = src.next_frame(second.index)
    assert third is not None and third.index == 3, "the snapshot took the worker's frame"
    assert src.frames_read == 5


def test_latest_returns_only_newer_frames(
    rtsp_server: RtspServer, make_source: Callable[..., RtspSource]
) -> None:
    src = make_source(rtsp_server.url)
    frame = src.wait_latest(-1, timeout_s=5.0)
    assert frame is not None
    again = src.latest(frame.index)
    assert again is None or again.index > frame.index
    newer = src.wait_latest(frame.index, timeout_s=2.0)
    assert newer is not None and newer.index > frame.index
    assert src.latest(newer.index + 1000) is None


def test_an_encoded_camera_loops_the_files_pictures_in_order_at_its_rate(
    tmp_path: Path, rtsp_server_factory: Callable[..., RtspServer], make_source: Callable[..., RtspSource]
) -> None:
    """The bench's cameras: the file encoded once and its pictures looped, as a camera's own encoder."""
    clip = short_clip(tmp_path / "ten.avi", frames=10, fps=10.0)  # grey 0, 1, ..., 9 in one second
    server = rtsp_server_factory(video=clip, encoded=True)
    src = make_source(server.url)
    first = src.wait_latest(-1, timeout_s=5.0)
    assert first is not None, f"no frame within 5 s: {src.last_error}"
    frames = frames_past_fps_window(src, first)
    greys = [grey(f.image) for f in frames]
    pairs = zip(greys, greys[1:], frames, frames[1:], strict=False)
    steps = [(b, a) for a, b, fa, fb in pairs if fb.index == fa.index + 1]
    assert len(steps) >= 20 and all(b == (a + 1) % 10 for b, a in steps), greys
    assert greys.count(0) >= 2, f"the 1 s file should have looped: {greys}"
    assert 7.0 <= src.fps <= 13.0, f"the server sends 10 fps, measured {src.fps:.1f}"
    assert src.reconnects == 0 and src.stalls == 0


def test_kill_then_restart_on_the_same_port(
    rtsp_server: RtspServer, make_source: Callable[..., RtspSource]
) -> None:
    src = make_source(rtsp_server.url)
    before = src.wait_latest(-1, timeout_s=5.0)
    assert before is not None
    before = src.wait_latest(before.index, timeout_s=2.0)
    assert before is not None

    rtsp_server.kill()
    took = wait_until(lambda: src.status != "online", 5.0, "status leaves online after SIGKILL")
    logger.info("kill noticed after %.2f s", took)
    assert src.status == "offline"
    assert src.last_error is not None and "127.0.0.1" in src.last_error
    wait_until(lambda: src.reconnects >= 2, 5.0, "reconnect attempts while the server is down")
    before = src.latest(-1)  # the last frame read before the kill stays in the slot
    assert before is not None

    port = rtsp_server.port
    rtsp_server.start()
    assert rtsp_server.port == port
    t0 = time.monotonic()
    after = src.wait_latest(before.index, timeout_s=10.0)
    assert after is not None, f"no frame after the restart: {src.last_error}"
    logger.info("frames again %.2f s after the restart", time.monotonic() - t0)
    assert src.status == "online"
    assert after.index > before.index and after.media_s > before.media_s
    assert (after.width, after.height) == (768, 576)


def test_hung_server_stalls_then_recovers(
    rtsp_server: RtspServer, make_source: Callable[..., RtspSource]
) -> None:
    src = make_source(rtsp_server.url)
    frame = src.wait_latest(-1, timeout_s=5.0)
    assert frame is not None

    rtsp_server.pause()
    took = wait_until(
        lambda: src.status == "stalled", STALL_S + READ_TIMEOUT_S + 1.0, "stalled after SIGSTOP"
    )
    logger.info("stall noticed after %.2f s", took)
    assert took >= STALL_S - 0.5, "stalled before stall_s passed"
    assert src.stalls == 1
    assert src.last_error is not None and "no new frame" in src.last_error
    # The blocked read returns at the read timeout; the fresh capture then waits out its open timeout.
    took = wait_until(lambda: src.reconnects >= 1, READ_TIMEOUT_S + 1.0, "a reopen after the hung read")
    logger.info("reopen attempted %.2f s after the stall", took)
    wait_until(lambda: src.status == "offline", OPEN_TIMEOUT_S + 1.0, "offline after the open timeout")
    assert "no answer within open_timeout_s" in (src.last_error or ""), src.last_error
    assert src.stalls == 1, "an open that waits is not a stall"

    last = src.latest(-1)
    assert last is not None
    rtsp_server.resume()
    t0 = time.monotonic()
    after = src.wait_latest(last.index, timeout_s=OPEN_TIMEOUT_S + READ_TIMEOUT_S + 5.0)
    assert after is not None, f"no frame after SIGCONT: {src.status} {src.last_error}"
    logger.info("frames again %.2f s after SIGCONT", time.monotonic() - t0)
    wait_until(lambda: src.status == "online", 2.0, "online after SIGCONT")
    assert src.stalls == 1


def test_wrong_path_gives_a_clear_error(
    rtsp_server: RtspServer, make_source: Callable[..., RtspSource]
) -> None:
    src = make_source(rtsp_server.url.replace("/cam", "/nosuch"))
    wait_until(lambda: src.last_error is not None, 5.0, "an error for a wrong path")
    wait_until(lambda: src.reconnects >= 2, 5.0, "the wrong path tried again")
    assert src.latest(-1) is None and src.frames_read == 0
    assert src.status == "offline"
    assert "404" in (src.last_error or "") and "/nosuch" in (src.last_error or "")
    assert src.reconnects >= 2, "a wrong path is retried (the camera may be reconfigured)"


def test_wrong_password_is_clear_and_never_shown(
    rtsp_server_factory: Callable[..., RtspServer],
    make_source: Callable[..., RtspSource],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = rtsp_server_factory(user="admin", password="s3cret-pw")
    good = make_source(server.url_with())
    assert good.wait_latest(-1, timeout_s=5.0) is not None, f"the right password fails: {good.last_error}"

    bad = make_source(server.url_with(password="Wr0ngPass"))
    wait_until(lambda: bad.last_error is not None, 5.0, "an error for a wrong password")
    time.sleep(1.0)
    assert bad.frames_read == 0 and bad.status == "offline"
    error = bad.last_error or ""
    assert "401" in error and "password" in error and "admin" in error, error
    for secret in ("Wr0ngPass", "s3cret-pw"):
        assert secret not in error
        assert secret not in repr(bad) and secret not in str(CameraHealth(bad.camera_id, 30.0).stats(bad))
        assert secret not in caplog.text, "a password reached the log"
    assert "admin:***@" in caplog.text


def test_nothing_listening(make_source: Callable[..., RtspSource]) -> None:
    src = make_source(f"rtsp://127.0.0.1:{free_port()}/cam")
    wait_until(lambda: src.last_error is not None, 5.0, "an error for a closed port")
    assert "refused" in (src.last_error or "")
    assert src.status == "offline" and src.frames_read == 0


# --- files -------------------------------------------------------------------------------


def test_file_url_loops_past_its_end(tmp_path: Path, make_source: Callable[..., RtspSource]) -> None:
    clip = short_clip(tmp_path / "clip.avi", frames=10, fps=20.0)
    src = make_source(f"file://{clip}")
    seen: list[int] = []
    last = -1
    t0 = time.monotonic()
    while len(seen) < 25:
        frame = src.wait_latest(last, timeout_s=2.0)
        assert frame is not None, f"file source stopped: {src.last_error}"
        assert frame.index == last + 1, "frames were dropped although each was taken at once"
        last = frame.index
        seen.append(grey(frame.image))
    elapsed = time.monotonic() - t0
    assert seen == [i % 10 for i in range(25)], seen
    assert elapsed >= 1.0, f"not paced at the file's 20 fps: 25 frames in {elapsed:.2f} s"
    assert src.status == "online" and src.reconnects == 0


def test_frames_dropped_counts_frames_nobody_took(
    tmp_path: Path, make_source: Callable[..., RtspSource]
) -> None:
    clip = short_clip(tmp_path / "clip.avi", frames=10, fps=50.0)
    src = make_source(str(clip))
    wait_until(lambda: src.frames_read >= 20, 5.0, "frames read")
    frame = src.latest(-1)
    assert frame is not None
    read, dropped = src.frames_read, src.frames_dropped
    # Every frame but the one just taken (and any read since) was overwritten untaken.
    assert read - 2 <= dropped <= read - 1, (read, dropped)
    assert src.latest(frame.index) is None or src.frames_read > read


def test_iterating_and_close(tmp_path: Path) -> None:
    clip = short_clip(tmp_path / "clip.avi", frames=5, fps=50.0)
    src: Source = RtspSource(camera(str(clip)), backoff_initial_s=0.2, backoff_max_s=2.0)
    frames = []
    for frame in src:
        frames.append(frame)
        if len(frames) == 12:
            break
    src.close()
    indexes = [f.index for f in frames]
    assert indexes == sorted(set(indexes)) and len(indexes) == 12


def test_missing_file_is_offline_and_retried_until_it_appears(tmp_path: Path) -> None:
    """A camera file that is not there is that camera's fault: offline with the reason, retried."""
    missing = tmp_path / "later.avi"
    src = RtspSource(camera(str(missing)), backoff_initial_s=0.1, backoff_max_s=0.3)
    src.start()
    try:
        deadline = time.monotonic() + 10
        while src.status != "offline" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert src.status == "offline"
        assert src.last_error is not None and "no such file" in src.last_error
        short_clip(missing, frames=5, fps=50.0)
        assert src.wait_latest(-1, timeout_s=20) is not None, src.last_error
        assert src.status == "online" and src.reconnects >= 1
    finally:
        src.stop()


# --- pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "rtsp_transport;tcp|analyzeduration;0|probesize;32768"),
        ("", "rtsp_transport;tcp|analyzeduration;0|probesize;32768"),
        ("rtsp_transport;udp", "rtsp_transport;tcp|analyzeduration;0|probesize;32768"),
        ("stimeout;5000000", "stimeout;5000000|rtsp_transport;tcp|analyzeduration;0|probesize;32768"),
        (
            "probesize;1000000|fflags;nobuffer",
            "probesize;1000000|fflags;nobuffer|rtsp_transport;tcp|analyzeduration;0",
        ),
    ],
)
def test_merge_capture_options(existing: str | None, expected: str) -> None:
    assert merge_capture_options(existing) == expected


def test_probe_names_the_host_but_never_the_password() -> None:
    port = free_port()
    why = probe_rtsp(f"rtsp://admin:hunter22@127.0.0.1:{port}/cam", 1.0)
    assert "refused" in why and f"127.0.0.1:{port}" in why and "hunter22" not in why


def test_digest_answer_matches_rfc_2617() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = authorization_header(
        ["Basic realm=x", challenge], "Mufasa", "Circle Of Life", "/dir/index.html", "GET", "0a4f113b"
    )
    assert header is not None and header.startswith("Digest ")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header and "nc=00000001" in header


def test_basic_answer() -> None:
    assert authorization_header(['Basic realm="cam"'], "admin", "pw", "rtsp://h/cam") == "Basic YWRtaW46cHc="
    assert authorization_header(['Bearer realm="cam"'], "admin", "pw", "rtsp://h/cam") is None


def test_a_reader_exception_is_retried_with_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside the reader (OpenCV raising on a URL, a decoder bug) used to end the
    thread for good; now the camera is offline with the (redacted) reason and tried again."""
    from edge_agent.sources import rtsp

    clip = short_clip(tmp_path / "clip.avi", frames=5, fps=50.0)
    real = rtsp.open_capture
    failures: list[str] = []

    def flaky(url: str, open_timeout_s: float, read_timeout_s: float) -> Any:
        if len(failures) < 2:
            failures.append(url)
            raise RuntimeError("cv2.error in rtsp://admin:S3cr#t@10.0.0.9/x")
        return real(url, open_timeout_s, read_timeout_s)

    monkeypatch.setattr(rtsp, "open_capture", flaky)
    src = RtspSource(camera(str(clip)), backoff_initial_s=0.1, backoff_max_s=0.3)
    src.start()
    try:
        assert src.wait_latest(-1, timeout_s=20) is not None, src.last_error
        assert len(failures) == 2 and src.reconnects >= 2 and src.status == "online"
    finally:
        src.stop()
    assert src.last_error is not None and "S3cr" not in src.last_error and "RuntimeError" in src.last_error
