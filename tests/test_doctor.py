"""`edge-agent doctor` against a live broker and RTSP server, and with each failure an installer meets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.broker import Mosquitto, make_password_file, mosquitto, mosquitto_factory  # noqa: F401
from tests.conftest import REPO
from tests.rtsp import RtspServer, gstreamer, rtsp_server_factory  # noqa: F401

PASSWORD = "cam-Pa55word"
MQTT_PASSWORD = "mq-Pa55word"


def write_config(tmp: Path, camera_url: str, broker: Mosquitto, **over: Any) -> Path:
    cfg: dict[str, Any] = {
        "version": 1,
        "site": {"id": "s"},
        "device": {"id": "d"},
        "mqtt": {"url": broker.url},
        "outbox": {"path": str(tmp / "state" / "outbox.sqlite3")},
        "evidence": {"dir": str(tmp / "state" / "evidence")},
        "cameras": [{"id": "gate", "url": camera_url, "detect": {"fps": 5}, "open_timeout_s": 3}],
    }
    cfg.update(over)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def doctor(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "doctor", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def line(out: str, what: str) -> str:
    found = [ln for ln in out.splitlines() if ln[5:].startswith(what + ":")]
    assert len(found) == 1, out
    return found[0]


def test_all_ok_with_a_live_camera_and_broker(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    model_ready: Path,
) -> None:
    cam = rtsp_server_factory(user="admin", password=PASSWORD)
    proc = doctor(write_config(tmp_path, cam.url_with(), mosquitto))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert line(out, "config").startswith("OK")
    assert line(out, "model").startswith("OK") and "ms per frame" in line(out, "model")
    assert line(out, "camera gate").startswith("OK") and "768x576" in line(out, "camera gate")
    assert line(out, "broker").startswith("OK") and "acknowledged" in line(out, "broker")
    assert line(out, "outbox").startswith("OK")
    assert line(out, "clock").startswith("OK")
    assert PASSWORD not in out + proc.stderr


def test_each_failure_is_named_with_its_fix(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],  # noqa: F811
    model_ready: Path,
) -> None:
    cam = rtsp_server_factory(user="admin", password=PASSWORD)
    pw = make_password_file(tmp_path / "mq.passwd", {"edge": MQTT_PASSWORD})
    broker = mosquitto_factory(password_file=pw).start()
    (tmp_path / "mqtt.pass").write_text("wrong-" + MQTT_PASSWORD + "\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = write_config(
        tmp_path,
        cam.url_with("admin", "wrong-" + PASSWORD),
        broker,
        mqtt={"url": broker.url, "username": "edge", "password_file": str(tmp_path / "mqtt.pass")},
        outbox={"path": str(blocker / "outbox.sqlite3")},
    )
    proc = doctor(config)
    out = proc.stdout
    assert proc.returncode == 1
    assert line(out, "camera gate").startswith("FAIL")
    assert "401" in line(out, "camera gate") and "fix the user or password" in line(out, "camera gate")
    assert line(out, "broker").startswith("FAIL") and "refused" in line(out, "broker")
    assert line(out, "outbox").startswith("FAIL") and "not writable" in line(out, "outbox")
    assert PASSWORD not in out and MQTT_PASSWORD not in out

    # the password fixed, the broker down
    (tmp_path / "mqtt.pass").write_text(MQTT_PASSWORD + "\n")
    assert line(doctor(config).stdout, "broker").startswith("OK")
    broker.kill()
    down = line(doctor(config).stdout, "broker")
    assert down.startswith("FAIL") and "cannot reach" in down


def test_a_damaged_model_file_fails_the_hash_check(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
    model_ready: Path,
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    damaged = models / model_ready.name
    shutil.copy(model_ready, damaged)
    with damaged.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00" * 16)
    config = write_config(tmp_path, str(REPO / "fixtures" / "walkway-a.mp4"), mosquitto)
    proc = doctor(config, env={"EDGE_AGENT_MODEL_DIR": str(models)})
    model = line(proc.stdout, "model")
    assert proc.returncode == 1
    assert model.startswith("FAIL") and "sha256" in model and "edge-agent models fetch yolox-nano" in model


def test_a_broken_config_is_reported_and_nothing_else_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsite: {id: s}\ndevice: {id: d}\ncameras: [{id: a, url: x, colour: red}]\n")
    proc = doctor(bad)
    assert proc.returncode == 1
    [only] = proc.stdout.splitlines()
    assert only.startswith("FAIL config: cameras[0].colour: unknown key 'colour' (expected one of: id, url,")
    assert only.endswith("-> edit the config file")


def test_webhook_check_names_an_unreadable_secret_and_an_unreachable_platform(tmp_path: Path) -> None:
    import socket

    from edge_agent.app.config import parse_config
    from edge_agent.tools.doctor import check_webhook

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    secret = tmp_path / "webhook.secret"
    text = yaml.safe_dump(
        {
            "version": 1,
            "site": {"id": "s"},
            "device": {"id": "d"},
            "cameras": [{"id": "gate", "url": "rtsp://127.0.0.1:9/x"}],
            "webhook": {"url": f"http://127.0.0.1:{port}/hook", "secret_file": str(secret)},
        }
    )
    cfg = parse_config(text)
    missing = check_webhook(cfg, 2)
    assert missing.status == "FAIL" and str(secret) in missing.detail
    secret.write_text("s3cret-value\n")
    ok = check_webhook(cfg, 2)
    assert ok.status == "OK" and "s3cret" not in ok.detail
    server.close()
    down = check_webhook(cfg, 2)
    assert down.status == "FAIL" and "cannot reach" in down.detail


# --- clock synchronisation -------------------------------------------------------------------------


def fake_tools(tmp: Path, monkeypatch: pytest.MonkeyPatch, **scripts: str) -> None:
    """Only the given tools on PATH, each a shell script printing its text (or failing with `!`)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in scripts.items():
        body = "exit 1" if text == "!" else f"/bin/cat <<'OUT'\n{text}\nOUT"
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


@pytest.mark.parametrize(
    ("tools", "status", "detail", "fix"),
    [
        ({"timedatectl": "NTP=yes\nNTPSynchronized=yes"}, "OK", "synchronised (timedatectl)", ""),
        (
            {"timedatectl": "NTP=no\nNTPSynchronized=no"},
            "FAIL",
            "no time service is on",
            "timedatectl set-ntp true",
        ),
        ({"timedatectl": "NTP=yes\nNTPSynchronized=no"}, "FAIL", "not synchronised yet", "UDP port 123"),
        ({"timedatectl": "!", "chronyc": "Leap status     : Normal"}, "OK", "chrony, leap status Normal", ""),
        (
            {"chronyc": "Reference ID    : 0\nLeap status     : Not synchronised"},
            "FAIL",
            "chrony has not",
            "chronyc sources",
        ),
        ({"timedatectl": "!"}, "WARN", "cannot tell", "chrony"),
        ({}, "WARN", "cannot tell", "systemd-timesyncd"),
    ],
)
def test_clock_sync_names_the_state_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tools: dict[str, str], status: str, detail: str, fix: str
) -> None:
    from edge_agent.tools import doctor
    from edge_agent.tools.doctor import check_clock_sync

    monkeypatch.setattr(doctor, "TIMESYNCD_SYNCED", tmp_path / "no-such-mark")
    fake_tools(tmp_path, monkeypatch, **tools)
    check = check_clock_sync()
    assert (check.status, check.what) == (status, "clock sync")
    assert detail in check.detail and fix in check.fix


def test_clock_sync_reads_the_mark_of_systemd_timesyncd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_agent.tools import doctor

    fake_tools(tmp_path, monkeypatch, timedatectl="!")  # no D-Bus to ask, as in a container
    mark = tmp_path / "synchronized"
    monkeypatch.setattr(doctor, "TIMESYNCD_SYNCED", mark)
    assert doctor.check_clock_sync().status == "WARN"
    mark.touch()
    assert doctor.check_clock_sync().detail == "synchronised (systemd-timesyncd)"
