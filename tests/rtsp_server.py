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

With `--encoded`, the file is encoded once at start (the same x264 settings) and
the shared media, made when a first client asks, loops its encoded pictures from
the file's start in real time, only packing them into RTP; clients that join it
later get them from where it is. A camera that encodes in its own hardware,
costing the box that serves it next to nothing: the bench's cameras (the live
encoder takes a few percent of a core that the agent under test would otherwise have).
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
    p.add_argument(
        "--encoded",
        action="store_true",
        help="encode the file once at start and loop its pictures (no encoder running)",
    )
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


ENCODER = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10"


class EncodedLoop:
    """The file encoded once; its pictures looped into each media's appsrc, stamped at `fps`."""

    def __init__(self, video: Path, fps: int) -> None:
        self.fps = fps
        self.units = self._encode(video, fps)

    @staticmethod
    def _encode(video: Path, fps: int) -> list[bytes]:
        desc = (
            f'filesrc location="{video.resolve()}" ! decodebin ! videoconvert ! videorate ! '
            f"video/x-raw,framerate={fps}/1 ! {ENCODER} ! h264parse config-interval=-1 ! "
            "video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false"
        )
        pipeline = Gst.parse_launch(desc)
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        units = []
        try:
            while (sample := sink.emit("pull-sample")) is not None:
                buf = sample.get_buffer()
                units.append(buf.extract_dup(0, buf.get_size()))
        finally:
            pipeline.set_state(Gst.State.NULL)
        if not units:
            raise RuntimeError(f"{video}: nothing encoded")
        return units

    def launch(self) -> str:
        caps = f"video/x-h264,stream-format=byte-stream,alignment=au,framerate={self.fps}/1"
        return f'( appsrc name=src format=time caps="{caps}" ! h264parse ! rtph264pay name=pay0 pt=96 )'

    def on_media(self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        """A media was made for a client: feed it the pictures from the first, stamped 1/fps apart.

        The media's sink sends each at its time, so the pictures go out in real time; a client
        that joins the shared media later gets them from where it is (at the next keyframe)."""
        media.get_element().get_by_name("src").connect("need-data", self._feed, [0])

    def start(self) -> None:
        """Nothing to run: each media asks for its pictures as it sends them."""

    def stop(self) -> None:
        """Nothing to stop."""

    def _feed(self, src: Gst.Element, _length: int, sent: list[int]) -> None:
        n = sent[0]
        buf = Gst.Buffer.new_wrapped(self.units[n % len(self.units)])
        buf.pts = n * Gst.SECOND // self.fps
        buf.duration = Gst.SECOND // self.fps
        sent[0] = n + 1
        src.emit("push-buffer", buf)


def build_server(
    args: argparse.Namespace, launch: str
) -> tuple[GstRtspServer.RTSPServer, GstRtspServer.RTSPMediaFactory]:
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
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
    return server, factory


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Gst.init(None)
    producer: Producer | EncodedLoop
    if args.encoded:
        producer = EncodedLoop(args.video, args.fps)
        server, factory = build_server(args, producer.launch())
        factory.connect("media-configure", producer.on_media)
    else:
        channel = f"cam{GLib.random_int()}"
        producer = Producer(args.video, channel, args.fps)
        server, _ = build_server(
            args,
            f"( intervideosrc channel={channel} ! video/x-raw,framerate={args.fps}/1 ! videoconvert ! "
            f"{ENCODER} ! rtph264pay name=pay0 pt=96 )",
        )
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
