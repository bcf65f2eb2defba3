"""The installer's command line: the default config, `doctor --json`, replay's progress bar on a
terminal, and logs for a terminal, for journald and for log shippers."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

from edge_agent.core.logs import JournalFormatter, JsonFormatter, RedactingFilter, priority, resolve_format
from edge_agent.tools.cli_support import DEFAULT_CONFIG, progress_bars
from tests.conftest import FIXTURES, REPO

MINIMAL = {
    "version": 1,
    "site": {"id": "s"},
    "device": {"id": "d"},
    "cameras": [{"id": "walkway", "url": str(FIXTURES / "walkway-a.mp4")}],
}


def edge_agent(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EDGE_AGENT_CONFIG", "JOURNAL_STREAM", "INVOCATION_ID")
    }
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write(tmp: Path, data: dict, name: str = "config.yaml") -> Path:
    # state in tmp: doctor creates the outbox and evidence folders it checks
    state = {"outbox": {"path": str(tmp / "state" / "outbox.sqlite3")}, "evidence": {"dir": str(tmp / "ev")}}
    path = tmp / name
    path.write_text(yaml.safe_dump({**state, **data}))
    return path


# --- the default config ----------------------------------------------------------


def test_commands_take_the_config_from_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path, MINIMAL)
    env = {"EDGE_AGENT_CONFIG": str(config)}
    ok = edge_agent("validate", env=env)
    assert ok.returncode == 0 and ok.stdout.startswith(f"{config}: OK"), ok.stderr
    assert edge_agent("validate", str(config)).returncode == 0  # the positional still works
    assert edge_agent("validate", "--config", str(config)).returncode == 0
    both = edge_agent("validate", str(config), "--config", str(tmp_path / "other.yaml"))
    assert both.returncode == 2 and "give one" in both.stderr
    doctor = edge_agent("doctor", "--json", env=env)
    assert json.loads(doctor.stdout.splitlines()[0])["what"] == "config"


def test_without_a_config_the_default_path_is_named(tmp_path: Path) -> None:
    if Path(DEFAULT_CONFIG).exists():
        pytest.skip(f"{DEFAULT_CONFIG} exists on this machine")
    for command in (["validate"], ["doctor"], ["run"], ["snapshot", "-o", "x.jpg"], ["listen"]):
        result = edge_agent(*command, cwd=tmp_path)
        assert result.returncode == 1, (command, result.stderr)
        expected = (
            f"no config file {DEFAULT_CONFIG} (the default): pass --config FILE or set EDGE_AGENT_CONFIG"
        )
        assert result.stderr.strip() == "edge-agent: " + expected, command
    missing = edge_agent("validate", env={"EDGE_AGENT_CONFIG": str(tmp_path / "nope.yaml")})
    assert missing.returncode == 1 and str(tmp_path / "nope.yaml") in missing.stderr
    assert "Traceback" not in missing.stderr


# --- doctor --json --------------------------------------------------------------------


def test_doctor_json_is_one_object_per_check_and_line(tmp_path: Path) -> None:
    password = "Pa55-word"
    cfg = {
        **MINIMAL,
        "mqtt": {"url": f"mqtt://edge:{password}@127.0.0.1:1"},
        "model": {"path": "/nonexistent.onnx"},
    }
    result = edge_agent("doctor", "--json", "--config", str(write(tmp_path, cfg)))
    assert result.returncode == 1
    checks = [json.loads(line) for line in result.stdout.splitlines()]
    assert checks and all(set(c) == {"status", "what", "detail", "fix"} for c in checks)
    assert all(c["status"] in ("OK", "WARN", "FAIL") for c in checks)
    by_what = {c["what"]: c for c in checks}
    assert by_what["model"]["status"] == "FAIL" and "nonexistent.onnx" in by_what["model"]["detail"]
    assert password not in result.stdout

    broken = write(tmp_path, {**MINIMAL, "colour": "red"}, "broken.yaml")
    [only] = [
        json.loads(line)
        for line in edge_agent("doctor", "--json", "--config", str(broken)).stdout.splitlines()
    ]
    assert (only["status"], only["what"], only["fix"]) == ("FAIL", "config", "edit the config file")
    assert only["detail"].startswith("colour: unknown key")


# --- replay's progress -------------------------------------------------------------------


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_only_on_a_terminal_and_not_when_quiet() -> None:
    assert progress_bars(False, _Stream(tty=False)) is None
    assert progress_bars(True, _Stream(tty=True)) is None
    stream = _Stream(tty=True)
    make = progress_bars(False, stream)
    assert make is not None
    bar = make("/clips/walkway-a.mp4", 10)
    for _ in range(10):
        bar.update(1)
    bar.close()
    shown = stream.getvalue()
    assert "walkway-a.mp4:" in shown and "/10 [" in shown and "frame/s" in shown, shown


def _clip(tmp: Path) -> Path:
    clip = tmp / "short.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(FIXTURES / "walkway-a.mp4"), "-t", "1.5", "-an", str(clip)],
        check=True,
        timeout=60,
    )
    return clip


def _on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal (as a person at a shell sees it); (rc, what it showed)."""
    controller, terminal = pty.openpty()
    # a terminal 100 columns wide (a fresh pseudo-terminal has none, and tqdm draws into the width)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(controller)
    return proc.wait(30), shown.decode(errors="replace")


def test_replay_shows_progress_on_a_terminal_only(tmp_path: Path, model_ready: Path) -> None:
    clip = _clip(tmp_path)
    config = write(tmp_path, {**MINIMAL, "cameras": [{"id": "walkway", "url": str(clip)}]})
    base = [sys.executable, "-m", "edge_agent", "replay", str(clip), "--config", str(config)]
    rc, shown = _on_a_terminal(base)
    assert rc == 0, shown
    assert re.search(r"short\.mp4: +\d+%\|", shown) and "frame/s" in shown, shown
    rc, shown = _on_a_terminal([*base, "--quiet"])
    assert rc == 0 and "%|" not in shown, shown
    piped = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert piped.returncode == 0 and "%|" not in piped.stderr, piped.stderr


# --- logs -----------------------------------------------------------------------------


def _record(level: int, msg: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("edge_agent.app.agent", level, __file__, 1, msg, None, exc_info)
    RedactingFilter().filter(record)
    return record


def test_journal_lines_carry_a_priority_and_no_timestamp() -> None:
    line = JournalFormatter().format(
        _record(logging.WARNING, "camera gate: offline (rtsp://admin:s3cret@cam/1)")
    )
    assert line == "<4>edge_agent.app.agent: camera gate: offline (rtsp://admin:***@cam/1)"
    assert [priority(x) for x in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, 50)] == [
        7,
        6,
        4,
        3,
        2,
    ]
    multi = (
        JournalFormatter()
        .format(_record(logging.ERROR, "camera gate: pipeline failed", exc=True))
        .splitlines()
    )
    assert len(multi) > 2 and all(x.startswith("<3>") for x in multi)  # every traceback line, too


def test_json_lines_for_log_shippers() -> None:
    out = json.loads(JsonFormatter().format(_record(logging.INFO, "camera gate: online", exc=True)))
    assert (out["level"], out["logger"], out["message"]) == (
        "INFO",
        "edge_agent.app.agent",
        "camera gate: online",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", out["ts"])
    assert "RuntimeError: boom" in out["exc"]


def test_the_format_follows_systemd() -> None:
    assert resolve_format("auto", {}) == "text"
    assert resolve_format("auto", {"JOURNAL_STREAM": "8:12345"}) == "journal"
    assert resolve_format("auto", {"INVOCATION_ID": "0f3c"}) == "journal"
    assert resolve_format("json", {"JOURNAL_STREAM": "8:12345"}) == "json"


def test_each_log_format_from_the_command_line(model_ready: Path) -> None:
    args = ["--log-level", "INFO", "models", "fetch", "yolox-nano"]
    message = "edge_agent.tools.models: model yolox-nano is already in"
    text = edge_agent(*args).stderr.splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO " + re.escape(message), text), text
    journal = edge_agent(*args, env={"JOURNAL_STREAM": "8:12345"}).stderr.splitlines()[0]
    assert journal.startswith("<6>" + message), journal
    shipped = json.loads(edge_agent("--log-format", "json", *args).stderr.splitlines()[0])
    assert shipped["level"] == "INFO" and shipped["message"].startswith("model yolox-nano is already in")


def test_the_command_line_leaves_the_console_out_of_every_other_command() -> None:
    """`edge-agent run` goes through the one entry point and builds the box's parser; neither the
    console nor its web framework, SQL toolkit or database drivers may come with it into the
    agent's process (14 MB of a Pi's memory for the drivers alone)."""
    probe = (
        "import sys\n"
        "from edge_agent.main import command_of\n"
        "from edge_agent.tools.cli import build_parser\n"
        "import edge_agent.app.agent, edge_agent.app.wiring, edge_agent.app.replay\n"
        "argv = ['--log-level', 'INFO', 'run', '--config', 'x.yaml']\n"
        "args = build_parser().parse_args(argv)\n"
        "heavy = ('psycopg', 'fastapi', 'starlette', 'sqlalchemy', 'alembic', 'uvicorn', 'sse_starlette',\n"
        "         'edge_agent.console')\n"
        "loaded = sorted({m.split('.')[0] if not m.startswith('edge_agent') else m\n"
        "                 for m in sys.modules if m.startswith(heavy)})\n"
        "print(command_of(argv), args.func.__name__, loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split(maxsplit=2) == ["run", "cmd_run", "[]\n"]
