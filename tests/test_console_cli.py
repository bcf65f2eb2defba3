"""`edge-agent console` as users meet it on a bad day: one clear line, exit 1, no traceback."""

from __future__ import annotations

import hashlib
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.broker import free_port
from tests.conftest import REPO


def console(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "edge_agent", "console", "--config", str(config), *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_a_bad_config_names_each_problem_with_its_path(tmp_path: Path) -> None:
    cfg = tmp_path / "console.yaml"
    cfg.write_text(
        "version: 1\nmqtt: {url: 'http://broker', clientid: x}\nweb: {port: 99999}\n"
        "timezone: Asia/Beijing\nmap: {tile_url: 'https://tiles.example/tile.png', attribution: OSM}\n"
        "retention: {days: {events: 0, videos: 3}, interval_s: 10}\nlimits: {event_bytes: lots}\n"
    )
    proc = console(cfg)
    assert proc.returncode == 1
    assert "mqtt.url: expected mqtt://host[:port]" in proc.stderr
    assert "mqtt.clientid: unknown key 'clientid'" in proc.stderr
    assert "web.port: must be less than or equal to 65535" in proc.stderr
    assert "timezone: expected an IANA time zone such as Asia/Shanghai, got 'Asia/Beijing'" in proc.stderr
    assert "map.tile_url: expected http(s)://host/...{z}/{x}/{y}..." in proc.stderr
    assert "retention.days.events: must be greater than 0" in proc.stderr
    assert "retention.days.videos: unknown key 'videos'" in proc.stderr
    assert "retention.interval_s: must be greater than or equal to 60" in proc.stderr
    assert "limits.event_bytes: expected a whole number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unreachable_postgresql_is_one_line_without_its_password(tmp_path: Path) -> None:
    cfg = tmp_path / "console.yaml"
    port = free_port()  # nothing listens there
    cfg.write_text(
        "version: 1\nmqtt: {url: 'mqtt://127.0.0.1:1'}\n"
        f"database: {{url: 'postgresql://town:hunter22@127.0.0.1:{port}/console'}}\n"
    )
    proc = console(cfg, "--migrate-only")
    assert proc.returncode == 1
    assert f"postgresql://town:***@127.0.0.1:{port}/console" in proc.stderr
    assert "Connection refused" in proc.stderr
    assert "hunter22" not in proc.stderr and "Traceback" not in proc.stderr


def test_migrate_only_creates_the_sqlite_schema_and_exits(tmp_path: Path) -> None:
    cfg = tmp_path / "console.yaml"
    cfg.write_text(
        f"version: 1\nmqtt: {{url: 'mqtt://127.0.0.1:1'}}\ndatabase: {{url: 'sqlite:///{tmp_path}/c.db'}}\n"
    )
    first, second = console(cfg, "--migrate-only"), console(cfg, "--migrate-only")
    assert first.returncode == 0 and "schema migrated to revision" in first.stderr
    assert second.returncode == 0 and "migrated" not in second.stderr and "up to date" in second.stderr


def test_no_mqtt_serves_a_first_release_database_read_only_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    """A database the first release left, served as it was on the new stack (upgraded at start),
    nothing changeable, no traceback from clients that leave, and SIGTERM ends it at once even
    with a live stream open."""
    db_path = tmp_path / "console.sqlite3"
    raw = sqlite3.connect(db_path)
    raw.executescript((REPO / "tests" / "data" / "console-v1" / "console.sql").read_text(encoding="utf-8"))
    raw.close()
    port = free_port()
    cfg = tmp_path / "console.yaml"
    cfg.write_text(
        f"version: 1\nmqtt: {{url: 'mqtt://127.0.0.1:1'}}\ndatabase: {{url: 'sqlite:///{db_path}'}}\n"
        f"web: {{port: {port}}}\n"
    )
    log = (tmp_path / "console.log").open("w")
    cmd = [sys.executable, "-m", "edge_agent", "console", "--config", str(cfg), "--no-mqtt"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"console: open http://127.0.0.1:{port}/"
        base = f"http://127.0.0.1:{port}/"
        listed = httpx.get(base + "api/incidents?tab=all").json()["incidents"]
        assert {i["event_id"]: i["state"] for i in listed} == {
            "edge-01-cam-a-000001": "resolved",  # the first release's verdicts, as workflow states
            "edge-01-cam-a-000002": "false_alarm",
            "edge-01-bridge-000003": "false_alarm",
            "edge-01-cam-a-000004": "new",
            "edge-01-cam-a-000006": "new",
            "edge-02-gate-000005": "new",
        }
        one = httpx.get(base + "api/incidents/edge-01-bridge-000003").json()
        assert [(a["who"], a["to_state"]) for a in one["audit"]] == [
            ("duty", "resolved"),
            ("li", "false_alarm"),
        ]
        shown = httpx.get(base + "api/incidents/edge-01-cam-a-000001/snapshot.jpg")
        sha = httpx.get(base + "api/incidents/edge-01-cam-a-000001").json()["timeline"][0]["event"][
            "snapshot"
        ]
        assert shown.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(shown.content).hexdigest() == sha["sha256"]
        assert httpx.get(base + "api/status").json()["mqtt"] is None
        refused = httpx.post(
            f"{base}api/incidents/edge-01-cam-a-000004/state", json={"state": "acknowledged"}
        )
        assert (refused.status_code, refused.json()) == (403, {"error": "read-only console"})
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:  # leaves mid-stream
            sock.sendall(f"GET /api/stream?since=0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        with httpx.stream("GET", base + "api/stream", timeout=10) as resp:
            assert resp.status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
    text = (tmp_path / "console.log").read_text()
    assert "Traceback" not in text and "ERROR" not in text, text


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = tmp_path / "console.yaml"
        cfg.write_text(
            f"version: 1\nmqtt: {{url: 'mqtt://127.0.0.1:1'}}\ndatabase: {{url: 'sqlite:///{tmp_path}/c.db'}}\n"
            f"web: {{port: {port}}}\n"
        )
        proc = console(cfg, "--no-mqtt")
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in proc.stderr
    assert "Traceback" not in proc.stderr
