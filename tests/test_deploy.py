"""Deployment: install.sh into a temporary root, the systemd unit, sd_notify and the watchdog."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edge_agent.app.config import load_config
from edge_agent.app.systemd import Watchdog, notify_socket_address, sd_notify

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "deploy" / "install.sh"
UNIT = REPO / "deploy" / "edge-agent.service"
EXAMPLE = REPO / "deploy" / "config.example.yaml"


def _install(prefix: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), "--prefix", str(prefix), "--no-apt", "--no-venv", "--no-model", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("root")
    result = _install(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


# --- install.sh --------------------------------------------------------------------


def test_install_into_prefix_builds_the_tree(
    installed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, result = installed
    unit = root / "etc/systemd/system/edge-agent.service"
    assert unit.read_text() == UNIT.read_text()
    assert _mode(unit) == 0o644

    etc = root / "etc/edge-agent"
    assert (etc / "config.yaml").read_text() == EXAMPLE.read_text()
    for secret in ("env", "mqtt.pass"):
        assert (etc / secret).is_file()
        assert _mode(etc / secret) == 0o600, secret

    assert (root / "var/lib/edge-agent").is_dir()
    assert (root / "var/lib/edge-agent/evidence").is_dir()
    assert _mode(root / "var/lib/edge-agent") == 0o750
    # The model's folder, the agent's default on a box; the manifests ship in the package.
    assert (root / "var/lib/edge-agent/models").is_dir()
    assert _mode(root / "var/lib/edge-agent/models") == 0o755
    assert not (root / "opt/edge-agent/models").exists()
    assert not (root / "opt/edge-agent/venv").exists()  # --no-venv

    out = result.stdout
    assert "==> " in out  # each step is printed
    assert "skipped (--no-apt)" in out
    assert "skipped (--no-venv)" in out
    assert "skipped (--no-model)" in out
    assert "not enabled (--prefix)" in out


def test_install_venv_holds_the_runtime_lock(tmp_path: Path) -> None:
    """What an installer gets on a box: the runtime lock's versions, every file hash-checked, no dev
    tool, the model fetched into the state directory, and an installed config that validates."""
    from scripts.locks import moved

    result = subprocess.run(
        ["bash", str(INSTALL), "--prefix", str(tmp_path), "--no-apt"],
        capture_output=True,
        text=True,
        timeout=600,
        # the model from the local copy of the weights, not the internet (the installer's offline option)
        env={**os.environ, "EDGE_AGENT_MODEL_CACHE": str(REPO.parent / "shared" / "models")},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    model = tmp_path / "var/lib/edge-agent/models/yolox_nano.onnx"
    assert model.is_file() and _mode(model) == 0o644
    venv_python = tmp_path / "opt/edge-agent/venv/bin/python"
    assert moved(REPO / "requirements" / "runtime.lock", venv_python) == []
    version = subprocess.run(
        [str(tmp_path / "opt/edge-agent/venv/bin/edge-agent"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0 and version.stdout.startswith("edge-agent "), version.stderr

    # The installer's next step (docs/installer.md): secrets into env, then validate the config,
    # through the guide's wrapper, from outside the checkout, nothing pointing at package files.
    etc = tmp_path / "etc/edge-agent"
    (etc / "env").write_text("EDGE_MQTT_USER=edge-01\nCAM1_PASS=hunter2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_AGENT_") and k != "PYTHONPATH"}
    # validate checks the model file: on a box it is in /var/lib/edge-agent/models, the default
    # there; under --prefix that folder is inside the prefix (manifests still come from the package)
    env["EDGE_AGENT_MODEL_DIR"] = str(model.parent)
    wrapper = f'set -a; . "{etc}/env"; exec "$0" "$@"'
    validate = subprocess.run(
        [
            "sh",
            "-c",
            wrapper,
            str(tmp_path / "opt/edge-agent/venv/bin/edge-agent"),
            "validate",
            str(etc / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert validate.stdout.startswith(f"{etc / 'config.yaml'}: OK (1 cameras, "), validate.stdout


def test_install_moves_the_model_of_an_earlier_install(tmp_path: Path) -> None:
    old = tmp_path / "opt/edge-agent/models"
    old.mkdir(parents=True)
    (old / "yolox-nano.yaml").write_text((REPO / "models" / "yolox-nano.yaml").read_text())
    (old / "yolox_nano.onnx").write_bytes(b"weights")
    result = _install(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "var/lib/edge-agent/models/yolox_nano.onnx").read_bytes() == b"weights"
    assert not old.exists()


def test_install_never_touches_the_real_system(
    installed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, result = installed
    commands = [line for line in result.stdout.splitlines() if line.lstrip().startswith("$ ")]
    for line in commands:
        assert "systemctl" not in line and "useradd" not in line and "apt-get" not in line, line
        assert "chown" not in line, line


def test_install_prints_apt_command_for_a_prefix(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALL), "--prefix", str(tmp_path), "--no-venv", "--no-model"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "apt-get install -y --no-install-recommends python3 python3-venv" in result.stdout


def test_install_again_keeps_config_and_secrets(tmp_path: Path) -> None:
    assert _install(tmp_path).returncode == 0
    etc = tmp_path / "etc/edge-agent"
    edited = (etc / "config.yaml").read_text().replace("id: edge-01", "id: edge-07")
    (etc / "config.yaml").write_text(edited)
    (etc / "env").write_text("CAM1_PASS=hunter2\n")
    (etc / "mqtt.pass").write_text("s3cret\n")
    (etc / "mqtt.pass").chmod(0o644)  # someone loosened it by hand

    again = _install(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "exists, kept" in again.stdout
    assert (etc / "config.yaml").read_text() == edited
    assert (etc / "env").read_text() == "CAM1_PASS=hunter2\n"
    assert (etc / "mqtt.pass").read_text() == "s3cret\n"
    assert _mode(etc / "mqtt.pass") == 0o600  # put right again


def test_install_rejects_unknown_option(tmp_path: Path) -> None:
    result = _install(tmp_path, "--frobnicate")
    assert result.returncode != 0
    assert "unknown option: --frobnicate" in result.stderr


def test_install_model_needs_the_venv(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALL), "--prefix", str(tmp_path), "--no-apt", "--no-venv"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "pass --no-model" in result.stderr


def test_install_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package `shellcheck`, see Makefile APT_PACKAGES)")
    result = subprocess.run(
        ["shellcheck", "--severity=style", str(INSTALL)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the unit ----------------------------------------------------------------------


def _unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def test_unit_has_the_service_contract() -> None:
    s = _unit_settings(UNIT.read_text())
    expected = {
        "Type": "notify",
        "User": "edge-agent",
        "ExecStart": "/opt/edge-agent/venv/bin/edge-agent run --config /etc/edge-agent/config.yaml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "always",
        "RestartSec": "5",
        "WatchdogSec": "60",
        "StateDirectory": "edge-agent",
        "ConfigurationDirectory": "edge-agent",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "SupplementaryGroups": "video",
        "TimeoutStopSec": "20",
        "EnvironmentFile": "-/etc/edge-agent/env",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], key
    assert "MemoryMax" in s
    # The package finds its manifests and its model folder on its own.
    assert not [e for e in s["Environment"] if e.startswith("EDGE_AGENT_")], s["Environment"]


def _verify(unit_dir: Path, unit_text: str) -> subprocess.CompletedProcess[str]:
    # `systemd-analyze verify` checks that ExecStart= exists on this machine, where the
    # venv is not installed: verify a copy whose ExecStart is /bin/true. (`--root=` would
    # need the whole systemd unit tree inside the root, sysinit.target and all.)
    unit_dir.mkdir(parents=True, exist_ok=True)
    copy = unit_dir / "edge-agent.service"
    lines = [
        "ExecStart=/bin/true" if line.startswith("ExecStart=") else line for line in unit_text.splitlines()
    ]
    copy.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""}
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _require_systemd_analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package `systemd`, see Makefile APT_PACKAGES)")


def test_installed_unit_passes_systemd_analyze_verify(
    installed: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    _require_systemd_analyze()
    root, _ = installed
    text = (root / "etc/systemd/system/edge-agent.service").read_text()
    result = _verify(tmp_path / "units", text)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    # verify exits 0 even for unknown keys and bad values; they show up as warnings.
    assert "edge-agent.service" not in output, output


def test_verify_would_catch_a_broken_directive(tmp_path: Path) -> None:
    """The check above is only worth something if verify reports bad directives."""
    _require_systemd_analyze()
    broken = UNIT.read_text().replace("MemoryMax=1G", "MemoryMax=lots\nWatchDogSecs=60")
    result = _verify(tmp_path / "units", broken)
    output = result.stdout + result.stderr
    assert "edge-agent.service" in output
    assert "lots" in output and "WatchDogSecs" in output


MAX_EXPOSURE = 2.5  # systemd-analyze security: 0 is fully locked down, 10 is wide open


def _exposure(unit_text: str, unit_dir: Path) -> float:
    unit_dir.mkdir(parents=True, exist_ok=True)
    copy = unit_dir / "edge-agent.service"
    copy.write_text(unit_text)
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    found = re.search(r"Overall exposure level for edge-agent\.service: ([0-9.]+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


def test_unit_sandbox_exposure_stays_low(tmp_path: Path) -> None:
    _require_systemd_analyze()
    assert _exposure(UNIT.read_text(), tmp_path / "units") <= MAX_EXPOSURE


def test_exposure_check_sees_a_weakened_unit(tmp_path: Path) -> None:
    _require_systemd_analyze()
    keep = ("[", "#", "Description", "Type", "User", "Group", "ExecStart", "WantedBy", "Restart")
    bare = "\n".join(line for line in UNIT.read_text().splitlines() if not line or line.startswith(keep))
    assert _exposure(bare + "\n", tmp_path / "units") > MAX_EXPOSURE


# --- the example config -------------------------------------------------------------


def test_example_config_validates() -> None:
    cfg = load_config(EXAMPLE, env={"CAM1_PASS": "x", "EDGE_MQTT_USER": "x"})
    assert cfg.mqtt is not None and cfg.mqtt.password_file == "/etc/edge-agent/mqtt.pass"
    assert cfg.outbox.path.startswith("/var/lib/edge-agent/")
    assert cfg.evidence.dir.startswith("/var/lib/edge-agent/")
    kinds = {rule.kind for rule in cfg.cameras[0].rules}
    assert {"left_object", "dwell"} <= kinds
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert "${CAM1_PASS}" in raw["cameras"][0]["url"]


def test_example_config_passes_the_cli_validator() -> None:
    env = {**os.environ, "CAM1_PASS": "x", "EDGE_MQTT_USER": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "validate", str(EXAMPLE)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- sd_notify and the watchdog ------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(2)
    yield sock
    sock.close()


def test_sd_notify_sends_ready(notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.getsockname())
    assert sd_notify("READY=1") is True
    assert notify_socket.recv(4096) == b"READY=1"


def test_sd_notify_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"edge-agent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify_socket_address() == b"\0" + name.encode()
        assert sd_notify("STATUS=watching 1 camera") is True
        assert sock.recv(4096) == b"STATUS=watching 1 camera"


def test_sd_notify_outside_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert sd_notify("READY=1") is False  # never raises


def test_watchdog_reads_interval_and_rate_limits(notify_socket: socket.socket) -> None:
    now = [100.0]
    env = {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "60000000"}
    dog = Watchdog(env=env, clock=lambda: now[0])
    assert dog.enabled and dog.interval_s == 60.0

    assert dog.kick() is True  # the first kick always goes out
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    now[0] += 10
    assert dog.kick() is False  # within half the interval
    now[0] += 19.9
    assert dog.kick() is False
    now[0] += 0.2  # 30.1 s after the first kick
    assert dog.kick() is True
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    assert dog.kick(force=True) is True
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    notify_socket.setblocking(False)
    with pytest.raises(BlockingIOError):
        notify_socket.recv(4096)  # nothing else was sent


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": "60000000"},  # no NOTIFY_SOCKET
        {"NOTIFY_SOCKET": "/run/x.sock"},  # no watchdog in the unit
        {"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "nonsense"},
        {"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "0"},
        {"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"},
    ],
)
def test_watchdog_disabled(env: dict[str, str]) -> None:
    dog = Watchdog(env=env)
    assert not dog.enabled
    assert dog.kick() is False


def test_watchdog_for_this_process(notify_socket: socket.socket) -> None:
    env = {
        "NOTIFY_SOCKET": notify_socket.getsockname(),
        "WATCHDOG_USEC": "2000000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    dog = Watchdog(env=env)
    assert dog.enabled and dog.interval_s == 2.0
    assert dog.kick() is True
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
