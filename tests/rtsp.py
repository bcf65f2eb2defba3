"""Test RTSP cameras: `tests/rtsp_server.py` as a subprocess on a free loopback port.

`RtspServer` starts the server with Debian's `/usr/bin/python3` (which has
GStreamer's bindings), waits for the URL it prints, and can kill (SIGKILL),
hang (SIGSTOP), resume (SIGCONT) and start it again on the same port. Tests
import the fixtures at the end (`rtsp_server`, `rtsp_server_factory`).

Nothing here skips: a host without GStreamer fails with the Debian packages to
install, so a missing dependency never passes for a green run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
FIXTURE_VIDEO = ROOT / "fixtures" / "walkway-a.mp4"
GST_PACKAGES = (
    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav python3-gi"
)
_CHECK = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst; Gst.init(None); "
    "missing = [e for e in ('x264enc', 'rtph264pay', 'intervideosink', 'intervideosrc', 'avdec_h264') "
    "if Gst.ElementFactory.find(e) is None]; "
    "print(' '.join(missing))"
)


@functools.lru_cache(maxsize=1)
def gstreamer_problem() -> str | None:
    """Why the test server cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing; install the Debian packages {GST_PACKAGES}"
    done = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer's Python bindings do not load ({last}); install the Debian packages {GST_PACKAGES}"
    if done.stdout.strip():
        return (
            f"GStreamer elements missing: {done.stdout.strip()}; install the Debian packages {GST_PACKAGES}"
        )
    return None


class RtspServer:
    """One test camera; `url` (and `port`) stay the same across kill and start."""

    def __init__(
        self,
        workdir: Path,
        video: Path = FIXTURE_VIDEO,
        *,
        path: str = "/cam",
        user: str | None = None,
        password: str | None = None,
        port: int = 0,
        encoded: bool = False,
    ) -> None:
        self.workdir = workdir
        self.encoded = encoded
        workdir.mkdir(parents=True, exist_ok=True)
        self.video = video
        self.path = path
        self.user = user
        self.password = password
        self.port = port
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "rtsp_server.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url_with(self, user: str | None = None, password: str | None = None) -> str:
        """The URL with credentials (by default the server's own)."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        return self.url.replace("rtsp://", f"rtsp://{user}:{password}@", 1)

    def start(self, timeout_s: float = 15.0) -> RtspServer:
        """Start (or start again, on the port of the first start); returns once it listens."""
        if self.running:
            return self
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.video), "--port", str(self.port)]
        args += ["--path", self.path]
        if self.encoded:
            args.append("--encoded")
        if self.user is not None and self.password is not None:
            args += ["--user", self.user, "--password", self.password]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
        log.close()
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    break
                if sel.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    line += chunk
        if not line.endswith(b"\n"):
            self.kill()
            raise RuntimeError(f"the RTSP server did not start within {timeout_s} s:\n{self.log()}")
        self.url = line.decode().strip()
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        return self

    def kill(self) -> None:
        """SIGKILL: the camera drops off the network without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def pause(self) -> None:
        """SIGSTOP: a hung camera; its sockets stay open and silent."""
        assert self.proc is not None and self.running
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.05) -> float:
    """Poll until predicate() is true; returns the seconds it took (fails the test on timeout)."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(step_s)
    return time.monotonic() - t0


# --- pytest fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def gstreamer() -> None:
    problem = gstreamer_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def rtsp_server_factory(tmp_path: Path, gstreamer: None) -> Iterator[Callable[..., RtspServer]]:
    """Make test cameras (`RtspServer(...)` keywords); each is killed (and resumed first) at the end."""
    made: list[RtspServer] = []

    def make(**kwargs: Any) -> RtspServer:
        server = RtspServer(tmp_path / f"rtsp{len(made)}", **kwargs)
        made.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in made:
            with contextlib.suppress(ProcessLookupError):
                if server.running:
                    server.resume()
            server.kill()


@pytest.fixture
def rtsp_server(rtsp_server_factory: Callable[..., RtspServer]) -> RtspServer:
    """One test camera looping fixtures/walkway-a.mp4 at rtsp://127.0.0.1:PORT/cam."""
    return rtsp_server_factory()
