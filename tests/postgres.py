"""A real PostgreSQL for the console's tests and benchmark: Debian's server in a temp dir.

`initdb` refuses to run as root, so when the tests run as root (CI does) the
cluster belongs to the `postgres` user that Debian's package creates (or
`nobody`), in a directory under /tmp that user owns, and every server command
runs through `runuser`. The server listens on a free loopback port with trust
authentication and its socket in the same directory; `stop()` removes it all.

Also imported by `bench/bench_console.py`, so nothing here depends on pytest
except the fixtures at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.broker import free_port


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return Path(initdb).parent


class Postgres:
    """One server process; `url(db)` names a database on it; `create_database()` makes a fresh one."""

    def __init__(self, *, durable: bool = False) -> None:
        self.bin = _pg_bin()
        self.port = free_port()
        self.durable = durable
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres" if _has_user("postgres") else "nobody"
        self.dir = Path(tempfile.mkdtemp(prefix="edge-console-pg-"))
        self.data = self.dir / "data"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.dir.chmod(0o700)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self) -> Postgres:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-instructions")  # fmt: skip
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.dir}",
            "-c max_connections=60",
        ]
        if not self.durable:
            # The tests kill the console, never the database: its fsyncs only cost time here.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                  "-o", " ".join(options), "-w", "-t", "60", "start", timeout=90)  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


try:
    import pytest
except ImportError:  # imported by the benchmark, which needs no fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def postgres_server() -> Iterator[Postgres]:
        """One PostgreSQL server for the whole test session, stopped at its end."""
        server = Postgres()
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture
    def postgres_url(postgres_server: Postgres) -> str:
        """A fresh, empty database on the session's server."""
        return postgres_server.create_database()
