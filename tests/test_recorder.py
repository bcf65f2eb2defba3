"""The stream recorder against a real RTSP camera (tests/rtsp.py): a bounded ring of the encoded
stream, clips cut from it without re-encoding, restarts when the camera comes back."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from edge_agent.core.backoff import Backoff
from edge_agent.sources.recorder import StreamRecorder
from tests.rtsp import RtspServer, gstreamer, rtsp_server, rtsp_server_factory, wait_until

__all__ = ["gstreamer", "rtsp_server", "rtsp_server_factory"]  # fixtures used by name


def probe(data: bytes, tmp: Path) -> dict[str, str]:
    path = tmp / "probe.mp4"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "format=duration:stream=codec_name,width,height,nb_read_packets", "-of", "default=nw=1", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines())


def test_ring_is_bounded_and_a_clip_is_the_cameras_own_stream(
    rtsp_server: RtspServer, tmp_path: Path
) -> None:
    rec = StreamRecorder(rtsp_server.url, tmp_path / "ring", keep_s=6.0, segment_s=1.0).start()
    try:
        wait_until(lambda: len(rec.segments()) >= 4, 30, "four complete segments")
        t_cut = time.time()
        data = rec.cut(t_cut - 3.0, t_cut)
        assert data is not None
        info = probe(data, tmp_path)
        # the camera's H.264 as it came: same size, no re-encode (the recorder has no encoder)
        assert info["codec_name"] == "h264" and (info["width"], info["height"]) == ("768", "576")
        assert 2.0 <= float(info["duration"]) <= 6.0, info
        assert data.find(b"moov") < data.find(b"mdat")
        wait_until(lambda: len(list((tmp_path / "ring").glob("seg*.ts"))) >= rec.wrap, 30, "the ring to wrap")
        time.sleep(2.5)
        assert len(list((tmp_path / "ring").glob("seg*.ts"))) <= rec.wrap  # old segments are overwritten
        assert rec.restarts == 0
    finally:
        rec.stop()


def test_the_recorder_starts_again_when_the_camera_comes_back(
    rtsp_server: RtspServer, tmp_path: Path
) -> None:
    rec = StreamRecorder(
        rtsp_server.url, tmp_path / "ring", keep_s=6.0, segment_s=1.0, backoff=Backoff(0.2, 1.0)
    ).start()
    try:
        wait_until(lambda: len(rec.segments()) >= 2, 30, "segments")
        rtsp_server.kill()
        wait_until(lambda: rec.restarts >= 1, 30, "a restart counted")
        rtsp_server.start()
        before = max(s.end_ts for s in rec.segments())
        wait_until(lambda: max(s.end_ts for s in rec.segments()) > before + 1.0, 40, "new segments")
    finally:
        rec.stop()
