"""`edge-agent doctor`: what is wrong with this box, one line per check, with the fix in plain words.

Each check says OK, WARN or FAIL. Exit 1 if any FAIL. Passwords never appear:
every URL is shown through `redact()`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.app.checks import check_file
from edge_agent.app.wiring import topics_of
from edge_agent.contract.commands import KeyFileError, load_public_key
from edge_agent.core.config import CameraConfig, Config, redact
from edge_agent.pipeline.detect.models import ModelError, cached_sha256, load_manifest, model_dir

MIN_FREE_MB = 200
SUBSTREAM_WIDTH = 1280
CAMERA_SAMPLE_S = 2.0


@dataclass(frozen=True)
class Check:
    status: str  # OK / WARN / FAIL
    what: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        """`doctor --json`: one object per check (status, what, detail, fix; passwords hidden)."""
        return {k: redact(v) for k, v in (("status", self.status), ("what", self.what),
                                          ("detail", self.detail), ("fix", self.fix))}  # fmt: skip

    def line(self) -> str:
        text = f"{self.status:<4} {self.what}: {self.detail}"
        if self.fix and self.status != "OK":
            text += f" -> {self.fix}"
        return redact(text)


def check_config_file(path: str) -> tuple[Config | None, list[Check]]:
    """Every check of `validate` (app/checks.py); the model's own problems are the model check's."""
    checked = check_file(path, verify_model=False, environment=False)
    cfg = checked.cfg
    if cfg is None:
        return None, [Check("FAIL", "config", str(p), "edit the config file") for p in checked.problems]
    rules = sum(len(c.rules) for c in cfg.cameras)
    return cfg, [Check("OK", "config", f"{path} valid ({len(cfg.cameras)} cameras, {rules} rules)")]


def check_model(cfg: Config) -> list[Check]:
    name = cfg.model.name or cfg.model.path or "?"
    if cfg.model.path is None and cfg.model.name is not None:
        try:
            manifest = load_manifest(cfg.model.name)
        except ModelError as err:
            return [Check("FAIL", "model", str(err), "fix model.name, or set model.path")]
        path = model_dir() / manifest.file
        if not path.is_file():
            return [Check("FAIL", "model", f"{path} is missing", f"run: edge-agent models fetch {name}")]
        got = cached_sha256(path)
        if got != manifest.sha256:
            return [
                Check(
                    "FAIL",
                    "model",
                    f"{path} sha256 {got[:12]}… does not match the manifest's {manifest.sha256[:12]}…",
                    f"the file is damaged or replaced: run edge-agent models fetch {name}",
                )
            ]
    try:
        from edge_agent.pipeline.detect.onnx import load_detector

        detector = load_detector(cfg.model)
    except ModelError as err:
        return [Check("FAIL", "model", str(err), "check model.path / model.name")]
    frame = np.full((576, 768, 3), 114, np.uint8)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        detector.detect(frame)
        times.append((time.perf_counter() - t0) * 1000)
    ms = float(np.median(times))
    fps_total = sum(c.detect.fps for c in cfg.cameras)
    budget_ms = 1000.0 / fps_total if fps_total else float("inf")
    detail = f"{name} loads, sha256 ok, {ms:.1f} ms per frame ({', '.join(detector.session.get_providers())})"
    if ms > budget_ms:
        return [
            Check(
                "WARN",
                "model",
                detail + f"; the cameras ask for {fps_total:g} frames/s ({budget_ms:.0f} ms each)",
                "lower detect.fps, keep the motion gate on, or use an int8 model (models quantize)",
            )
        ]
    return [Check("OK", "model", detail)]


def check_camera(cam: CameraConfig) -> Check:
    from edge_agent.sources import SourceError
    from edge_agent.sources.capture import file_path, open_capture

    what = f"camera {cam.id}"
    path = file_path(cam.url)
    is_rtsp = path is None
    if path is not None and not path.exists():
        return Check("FAIL", what, f"{path}: no such file", "fix the camera url")
    try:
        cap = open_capture(cam.url, cam.open_timeout_s, cam.open_timeout_s)
    except SourceError as err:
        reason = str(err).partition(": ")[2] or str(err)  # the why, without the url again
        return Check("FAIL", what, f"{redact(cam.url)} unreachable: {reason}", _camera_fix(reason))
    try:
        t0 = time.monotonic()
        frames = 0
        size = (0, 0)
        while time.monotonic() - t0 < CAMERA_SAMPLE_S:
            ok, img = cap.read()
            if not ok or img is None:
                break
            frames += 1
            size = (int(img.shape[1]), int(img.shape[0]))
        elapsed = max(time.monotonic() - t0, 1e-3)
    finally:
        cap.release()
    if frames == 0:
        return Check("FAIL", what, f"{redact(cam.url)} opened but sent no frame", "check the camera's stream")
    fps = frames / elapsed
    detail = f"{redact(cam.url)} reachable, {size[0]}x{size[1]}, {fps:.1f} fps"
    if is_rtsp and fps < cam.detect.fps * 0.9:
        return Check(
            "WARN",
            what,
            detail + f" (detect.fps is {cam.detect.fps:g})",
            "raise the camera's frame rate or lower detect.fps",
        )
    if size[0] > SUBSTREAM_WIDTH:
        return Check(
            "WARN",
            what,
            detail,
            f"the detector looks at 416 px: use the camera's sub-stream (≤ {SUBSTREAM_WIDTH} px wide, "
            "e.g. Hikvision …/Channels/102) to save CPU and network",
        )
    return Check("OK", what, detail)


def _camera_fix(reason: str) -> str:
    low = reason.lower()
    if "401" in low or "password" in low:
        return "fix the user or password in the camera url (or its ${VAR})"
    if "404" in low or "path" in low:
        return "fix the stream path in the camera url (see the camera's manual)"
    if "refused" in low:
        return "check the camera's IP and RTSP port; is RTSP enabled on the camera?"
    return "check the camera is powered and reachable from this box (ping it), and its url"


def check_broker(cfg: Config, timeout_s: float = 10.0) -> Check:
    from edge_agent.contract.mqtt_client import parse_broker_url, probe_broker

    if cfg.mqtt is None:
        return Check("FAIL", "broker", "no mqtt section in the config", "add mqtt: {url: mqtts://…}")
    _, _, tls, _, _ = parse_broker_url(cfg.mqtt.url)
    if cfg.mqtt.tls is not None and not tls:
        detail = f"mqtt.tls is set but mqtt.url {redact(cfg.mqtt.url)!r} is plain mqtt://; use mqtts://"
        return Check("FAIL", "broker", detail, "fix mqtt.url / mqtt.tls")
    ok, detail = probe_broker(cfg.mqtt, f"{topics_of(cfg).base}/doctor", timeout_s)
    if ok:
        return Check("OK", "broker", f"{redact(cfg.mqtt.url)} {detail}")
    fix = "check mqtt.url, the network, and the broker"
    if "refused the connection" in detail:
        fix = "fix mqtt.username and the password file"
    elif "TLS" in detail or "certificate" in detail:
        fix = "check mqtt.tls.ca (and cert/key if the broker wants a client certificate)"
    return Check("FAIL", "broker", detail, fix)


def check_webhook(cfg: Config, timeout_s: float = 10.0) -> Check:
    """The signing secret is readable and the platform's host answers a TCP connect (nothing is POSTed)."""
    import socket
    from urllib.parse import urlsplit

    from edge_agent.delivery.webhook import read_secret

    assert cfg.webhook is not None
    try:
        read_secret(cfg.webhook.secret_file)
    except ValueError as err:
        return Check(
            "FAIL", "webhook", str(err), "write the secret (one line) and give the service user read access"
        )
    url = urlsplit(cfg.webhook.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout_s):
            pass
    except OSError as err:
        detail = f"cannot reach {redact(cfg.webhook.url)}: {err.strerror or err}"
        return Check("FAIL", "webhook", detail, "check webhook.url and the network")
    return Check("OK", "webhook", f"{redact(cfg.webhook.url)} reachable, secret readable")


def check_directory(what: str, directory: Path) -> Check:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as err:
        return Check(
            "FAIL",
            what,
            f"{directory} is not writable: {err.strerror or err}",
            f"create it and give the service user write access (chown edge-agent {directory})",
        )
    free_mb = shutil.disk_usage(directory).free / 1e6
    if free_mb < MIN_FREE_MB:
        return Check("WARN", what, f"{directory} writable, only {free_mb:.0f} MB free", "free disk space")
    return Check("OK", what, f"{directory} writable, {free_mb / 1000:.1f} GB free")


def check_clock() -> Check:
    year = time.gmtime().tm_year
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if year < 2025 or year > 2100:
        return Check(
            "FAIL",
            "clock",
            f"system time is {now}",
            "event times would be wrong: enable NTP (timedatectl set-ntp true) or add an RTC",
        )
    return Check("OK", "clock", f"system time {now}")


CLOCK_TOOL_TIMEOUT_S = 5.0
TIMESYNCD_SYNCED = Path("/run/systemd/timesync/synchronized")  # touched by timesyncd once in sync
_NOT_SYNCED_WHY = "event times, TLS certificates and the expiry of remote commands go wrong"


def _tool_output(*args: str) -> str | None:
    """stdout of a system tool, or None where it is missing or fails (no systemd in a container)."""
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=CLOCK_TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def check_clock_sync() -> Check:
    """Whether the clock is synchronised to a time server: a Pi has no battery clock, and boots
    with the time it had when it was switched off until NTP sets it right."""
    out = _tool_output("timedatectl", "show", "-p", "NTP", "-p", "NTPSynchronized")
    if out is not None:
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if values.get("NTPSynchronized") == "yes":
            return Check("OK", "clock sync", "synchronised (timedatectl)")
        if values.get("NTP") != "yes":
            return Check(
                "FAIL", "clock sync", f"not synchronised and no time service is on: {_NOT_SYNCED_WHY}",
                "sudo timedatectl set-ntp true (systemd-timesyncd), or install chrony",
            )  # fmt: skip
        return Check(
            "FAIL", "clock sync", f"the time service is on but not synchronised yet: {_NOT_SYNCED_WHY}",
            "let it reach a time server: open UDP port 123, or name a local server (NTP= in "
            "/etc/systemd/timesyncd.conf, or a `server` line in /etc/chrony/chrony.conf); "
            "`timedatectl timesync-status` or `chronyc sources` shows what it tries",
        )  # fmt: skip
    if TIMESYNCD_SYNCED.exists():  # systemd-timesyncd's own mark, where timedatectl cannot ask it
        return Check("OK", "clock sync", "synchronised (systemd-timesyncd)")
    out = _tool_output("chronyc", "tracking")
    if out is not None:
        leap = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Leap status")), ""
        )
        if leap and leap != "Not synchronised":
            return Check("OK", "clock sync", f"synchronised (chrony, leap status {leap})")
        return Check(
            "FAIL", "clock sync", f"chrony has not synchronised the clock: {_NOT_SYNCED_WHY}",
            "check `chronyc sources`; open UDP port 123 or add a reachable `server` to "
            "/etc/chrony/chrony.conf",
        )  # fmt: skip
    return Check(
        "WARN", "clock sync",
        "cannot tell whether the clock is synchronised (neither timedatectl nor chronyc answers)",
        "run a time service: systemd-timesyncd (sudo timedatectl set-ntp true) or chrony",
    )  # fmt: skip


def check_commands(cfg: Config) -> list[Check]:
    """Remote operations: the platform's public key must load, or the agent does not start."""
    key_file = cfg.commands.public_key_file
    if key_file is None:
        return []
    try:
        load_public_key(key_file)
    except KeyFileError as err:
        return [
            Check("FAIL", "commands", str(err), "copy the town's public key (edge-agent keys generate) there")
        ]
    return [
        Check(
            "OK", "commands", f"signed by the key in {key_file}, confirmed for {cfg.commands.confirm_s:g} s"
        )
    ]


def _guarded(what: str, check: Callable[[], list[Check]]) -> list[Check]:
    """A check that raises is a FAIL line with the reason, never a traceback: doctor is what a
    person runs when something is already wrong."""
    try:
        return check()
    except Exception as err:
        return [Check("FAIL", what, f"the check itself failed: {type(err).__name__}: {err}", "report this")]


def run_checks(config_path: str) -> Iterator[Check]:
    cfg, checks = check_config_file(config_path)
    yield from checks
    if cfg is None:
        return
    yield from _guarded("model", lambda: check_model(cfg))
    for cam in cfg.cameras:
        yield from _guarded(f"camera {cam.id}", lambda cam=cam: [check_camera(cam)])  # type: ignore[misc]
    if cfg.mqtt is not None or cfg.webhook is None:
        yield from _guarded("broker", lambda: [check_broker(cfg)])
    if cfg.webhook is not None:
        yield from _guarded("webhook", lambda: [check_webhook(cfg)])
    yield from _guarded("outbox", lambda: [check_directory("outbox", Path(cfg.outbox.path).parent)])
    yield from _guarded("evidence", lambda: [check_directory("evidence", Path(cfg.evidence.dir))])
    yield from _guarded("commands", lambda: check_commands(cfg))
    yield check_clock()
    yield from _guarded("clock sync", lambda: [check_clock_sync()])
