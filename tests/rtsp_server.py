"""A test RTSP camera: GStreamer's RTSP server looping a video file in real time.

Run with Debian's `/usr/bin/python3` (it has `gi`); the Debian packages are
gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
gstreamer1.0-libav python3-gi.

    /usr/bin/python3 tests/rtsp_server.py fixtures/walkway-a.mp4 [--port 0] [--path /cam]
        [--user U --password P] [--fps 10]

A producer pipeline decodes the file at its real rate into an `intervideosink`
and seeks back to 0 at end of stream, so the camera never ends; one shared
media serves every client from `intervideosrc`, so a client that connects
late sees the live picture, not the file's start. When the server listens it
writes its URL (without credentials) as one line on stdout.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
except (ImportError, ValueError) as err:  # pragma: no cover - depends on the host
    sys.stderr.write(
        f"rtsp_server: GStreamer's Python bindings are missing ({err}); install the Debian packages "
        "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
        "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly "
        "gstreamer1.0-libav python3-gi\n"
    )
    sys.exit(3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve a looping video file over RTSP (H.264).")
    p.add_argument("video", type=Path)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: the OS chooses a free port")
    p.add_argument("--path", default="/cam")
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args(argv)
    if not args.video.is_file():
        p.error(f"{args.video}: no such file")
    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    if not args.path.startswith("/"):
        args.path = "/" + args.path
    return args


class Producer:
    """Decodes the file in real time into an intervideosink channel; loops at EOS."""

    def __init__(self, video: Path, channel: str, fps: int) -> None:
        desc = (
            f'filesrc location="{video.resolve()}" ! decodebin ! videoconvert ! videorate ! '
            f"video/x-raw,framerate={fps}/1 ! intervideosink channel={channel}"
        )
        self.pipeline = Gst.parse_launch(desc)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)

    def start(self) -> None:
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise RuntimeError("the producer pipeline did not start")

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)

    def _on_message(self, _bus: Gst.Bus, msg: Gst.Message) -> None:
        if msg.type == Gst.MessageType.EOS:
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            sys.stderr.write(f"rtsp_server: producer error: {err.message} ({debug})\n")
            sys.stderr.flush()


def build_server(args: argparse.Namespace, channel: str) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( intervideosrc channel={channel} ! video/x-raw,framerate={args.fps}/1 ! videoconvert ! "
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )"
    )
    factory.set_shared(True)
    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                f"{args.user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    return server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Gst.init(None)
    channel = f"cam{GLib.random_int()}"
    producer = Producer(args.video, channel, args.fps)
    server = build_server(args, channel)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        sys.stderr.write(f"rtsp_server: cannot listen on {args.host}:{args.port}\n")
        return 2
    producer.start()

    def quit_loop(*_: object) -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, quit_loop)
    sys.stdout.write(f"rtsp://{args.host}:{server.get_bound_port()}{args.path}\n")
    sys.stdout.flush()
    try:
        loop.run()
    finally:
        producer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
