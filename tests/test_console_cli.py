"""`edge-agent console` as users meet it on a bad day: one clear line, exit 1, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.broker import free_port
from tests.conftest import REPO


def console(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "edge_agent", "console", "--config", str(config), *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_a_bad_config_names_each_problem_with_its_path(tmp_path: Path) -> None:
    cfg = tmp_path / "console.yaml"
    cfg.write_text("version: 1\nmqtt: {url: 'http://broker', clientid: x}\nweb: {port: 99999}\n")
    proc = console(cfg)
    assert proc.returncode == 1
    assert "mqtt.url: expected mqtt://host[:port]" in proc.stderr
    assert "mqtt.clientid: unknown key 'clientid'" in proc.stderr
    assert "web.port: must be less than or equal to 65535" in proc.stderr
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
    assert f"cannot connect to postgresql://town:***@127.0.0.1:{port}/console" in proc.stderr
    assert "hunter22" not in proc.stderr and "Traceback" not in proc.stderr


def test_migrate_only_creates_the_sqlite_schema_and_exits(tmp_path: Path) -> None:
    cfg = tmp_path / "console.yaml"
    cfg.write_text(
        f"version: 1\nmqtt: {{url: 'mqtt://127.0.0.1:1'}}\ndatabase: {{url: 'sqlite:///{tmp_path}/c.db'}}\n"
    )
    first, second = console(cfg, "--migrate-only"), console(cfg, "--migrate-only")
    assert first.returncode == 0 and "schema migrated to version 1" in first.stderr
    assert second.returncode == 0 and "migrated" not in second.stderr and "up to date" in second.stderr
