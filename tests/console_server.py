"""`edge-agent console` as a subprocess for the tests and the benchmark: start, SIGKILL, start again.

`ConsoleProcess` writes a CONSOLE.yaml into its work dir, runs the real command
line and waits for the page to answer and the subscription to be in place
(`/api/status`). The port stays the same across restarts. Also used by
`bench/bench_console.py`: nothing here depends on pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.broker import free_port

REPO = Path(__file__).resolve().parents[1]


class ConsoleProcess:
    def __init__(
        self,
        workdir: Path,
        broker_url: str,
        database_url: str,
        *,
        client_id: str = "console-test",
        group: str | None = None,
        web: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        authorization: str | None = None,
    ) -> None:
        self.authorization = authorization  # the Authorization header for api(), when loopback is not trusted
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        mqtt: dict[str, Any] = {"url": broker_url, "client_id": client_id}
        if group is not None:
            mqtt["group"] = group
        cfg: dict[str, Any] = {
            "version": 1,
            "mqtt": mqtt,
            "database": {"url": database_url},
            "web": {"bind": "127.0.0.1", "port": self.port, **(web or {})},
            **(extra or {}),
        }
        self.config = workdir / "console.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.log_path = workdir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 20.0, wait_subscribed: bool = True) -> ConsoleProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "console", "--config", str(self.config)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the console exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status = self.api("/api/status")
                if not wait_subscribed or (status["mqtt"] or {}).get("subscribed"):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the console did not come up within {timeout_s} s:\n{self.log()}")

    def api(self, path: str, timeout_s: float = 5.0) -> Any:
        headers = {"Authorization": self.authorization} if self.authorization else {}
        req = urllib.request.Request(self.url.rstrip("/") + path, headers=headers)  # noqa: S310
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
            return json.loads(resp.read())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def event_rows(database_url: str) -> list[tuple[str, str, str]]:
    """Every (event_id, phase, ts) row of a console database, with repeats if there were any."""
    import sqlalchemy as sa

    from edge_agent.console.db import Database
    from edge_agent.console.tables import events

    db = Database(database_url, pool_size=1)
    try:
        with db.connection() as conn:
            rows = conn.execute(
                sa.select(events.c.event_id, events.c.phase, events.c.ts).order_by(events.c.id)
            )
            return [(r.event_id, r.phase, r.ts) for r in rows]
    finally:
        db.close()


def wait_rows(database_url: str, count: int, timeout_s: float) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rows = event_rows(database_url)
        except Exception:  # the console may not have created the tables yet
            rows = []
        if len(rows) >= count or time.monotonic() >= deadline:
            return rows
        time.sleep(0.2)
