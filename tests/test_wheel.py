"""The wheel on its own: built, installed into a fresh venv outside the tree, and used from there.

What an installer meets: `pip wheel`, a venv with the runtime lock (every file hash-checked) and
the wheel without dependencies, then `validate`, `models list`/`fetch`, `listen` and `doctor`
run from that venv, in a folder outside the checkout, with no variable pointing at package
files. The manifests and schemas must come out of the package itself.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker import Mosquitto, Subscriber, fake_jpeg, make_event, mosquitto  # noqa: F401  (fixture)
from tests.conftest import FIXTURES, REPO, SHARED

PACKAGED = {
    "edge_agent/data/models/yolox-nano.yaml": REPO / "models" / "yolox-nano.yaml",
    "edge_agent/data/mqtt/event.schema.json": REPO / "mqtt" / "event.schema.json",
    "edge_agent/data/mqtt/status.schema.json": REPO / "mqtt" / "status.schema.json",
    "edge_agent/data/mqtt/camera-status.schema.json": REPO / "mqtt" / "camera-status.schema.json",
    "edge_agent/data/mqtt/stats.schema.json": REPO / "mqtt" / "stats.schema.json",
    "edge_agent/data/mqtt/command.schema.json": REPO / "mqtt" / "command.schema.json",
    "edge_agent/data/mqtt/command-result.schema.json": REPO / "mqtt" / "command-result.schema.json",
    "edge_agent/data/mqtt/asyncapi.yaml": REPO / "mqtt" / "asyncapi.yaml",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = out.glob("edge_agent-*.whl")
    return built


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A home folder outside the checkout with `venv/` holding the runtime lock and the wheel."""
    home = tmp_path_factory.mktemp("box")
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    lock = REPO / "requirements" / "runtime.lock"
    for args in (["--require-hashes", "-r", str(lock)], [str(wheel)]):
        result = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    return home


# On a machine that holds an installed box, /var/lib/edge-agent/models is the default model
# directory (and must not be written by a test): the test then names its own.
SYSTEM_MODELS = Path("/var/lib/edge-agent")


def model_dir_of(home: Path) -> tuple[Path, dict[str, str]]:
    """Where `models fetch` puts the model here, and the variable that takes it there if any."""
    if SYSTEM_MODELS.is_dir():
        return home / "models", {"EDGE_AGENT_MODEL_DIR": str(home / "models")}
    return home / ".cache" / "edge-agent" / "models", {}  # the default: the user's cache


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user on the box: nothing points at the checkout or at package files."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EDGE_AGENT_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "XDG_CACHE_HOME")
    }
    env.update(HOME=str(home), PATH=f"{home / 'venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}")
    env.update(extra)
    return env


def edge_agent(home: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(home / "venv" / "bin" / "edge-agent"), *args],
        cwd=home,
        env=clean_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_config(home: Path, broker_url: str) -> Path:
    cfg = {
        "version": 1,
        "site": {"id": "laohu"},
        "device": {"id": "edge-01"},
        "model": {"name": "yolox-nano"},
        "mqtt": {"url": broker_url},
        "outbox": {"path": str(home / "state" / "outbox.sqlite3")},
        "evidence": {"dir": str(home / "state" / "evidence")},
        "cameras": [
            {
                "id": "walkway",
                "url": str(FIXTURES / "walkway-a.mp4"),
                "detect": {"fps": 2},
                "zones": {"path": {"polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}},
                "rules": [{"id": "people", "kind": "presence", "zone": "path", "labels": ["person"]}],
            }
        ],
    }
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_wheel_holds_the_manifests_and_the_contract_as_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for name, source in PACKAGED.items():
            info = zf.getinfo(name)
            assert not stat.S_ISLNK(info.external_attr >> 16), f"{name} is a symlink in the wheel"
            assert zf.read(name) == source.read_bytes(), name
        names = zf.namelist()
    assert not [n for n in names if n.endswith("-int8.yaml")]  # local quantize output stays out
    assert not [n for n in names if n.endswith(".onnx")]  # model files are fetched, never shipped


def test_the_venv_runs_the_installed_package(box: Path) -> None:
    result = subprocess.run(
        [str(box / "venv" / "bin" / "python"), "-c", "import edge_agent; print(edge_agent.__file__)"],
        cwd=box,
        env=clean_env(box),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(box / "venv")), result.stdout


def test_validate_and_models_from_the_wheel(box: Path, mosquitto: Mosquitto) -> None:  # noqa: F811
    config = write_config(box, mosquitto.url)
    models, env = model_dir_of(box)
    # validate checks the model file too: before the fetch it names the fix, which it can only
    # do because it found the packaged manifest
    before = edge_agent(box, "validate", str(config), **env)
    assert before.returncode == 1
    assert "run `edge-agent models fetch yolox-nano`" in before.stderr, before.stderr

    listing = edge_agent(box, "models", "list", **env)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split()[:3] == ["yolox-nano", "missing", "yolox_nano.onnx"]

    # The model file is fetched into the user's cache (no /var/lib/edge-agent here); the copy
    # comes from the local cache of weights instead of the internet, its sha256 checked.
    cache = str(SHARED / "models")
    fetched = edge_agent(box, "models", "fetch", "yolox-nano", EDGE_AGENT_MODEL_CACHE=cache, **env)
    assert fetched.returncode == 0, fetched.stderr
    assert f"yolox-nano: {models / 'yolox_nano.onnx'} (sha256 verified)" in fetched.stdout
    assert edge_agent(box, "models", "list", **env).stdout.split()[:2] == ["yolox-nano", "installed"]
    result = edge_agent(box, "validate", str(config), **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK (1 cameras, 1 rules)" in result.stdout


def test_doctor_from_the_wheel(box: Path, mosquitto: Mosquitto) -> None:  # noqa: F811
    config = write_config(box, mosquitto.url)
    models, env = model_dir_of(box)
    if not (models / "yolox_nano.onnx").is_file():
        cache = str(SHARED / "models")
        fetched = edge_agent(box, "models", "fetch", "yolox-nano", EDGE_AGENT_MODEL_CACHE=cache, **env)
        assert fetched.returncode == 0, fetched.stderr
    result = edge_agent(box, "doctor", "--config", str(config), timeout=180, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for what in ("config", "model", "camera walkway", "broker", "outbox", "evidence", "clock"):
        assert any(line.startswith("OK") and line[5:].startswith(what + ":") for line in lines), (what, lines)
    assert "Traceback" not in result.stderr


def test_listen_from_the_wheel_checks_an_event_against_the_packaged_schema(
    box: Path,
    mosquitto: Mosquitto,  # noqa: F811
) -> None:
    listen = subprocess.Popen(
        [
            str(box / "venv" / "bin" / "edge-agent"),
            "listen",
            "--url",
            mosquitto.url,
            "--json",
            "--snapshots",
            str(box / "snaps"),
            "--count",
            "1",
            "--timeout",
            "30",
        ],
        cwd=box,
        env=clean_env(box),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listen.stderr is not None
        first = listen.stderr.readline()
        assert "connected to" in first, first
        jpeg = fake_jpeg(1)
        event = make_event(1, snapshot=jpeg)
        assert event.snapshot is not None
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        for topic, payload in (
            (event.snapshot.topic, jpeg),
            ("eagleeye/v1/laohu/edge-01/events/cam-a/dumping", event.to_json().encode()),
        ):
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        out, err = listen.communicate(timeout=40)
    finally:
        listen.kill()
    assert listen.returncode == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [event.to_dict()]
    assert "1 events, 0 duplicates dropped, 0 invalid, 1 snapshots saved" in err
    assert (box / "snaps" / f"{event.event_id}.jpg").read_bytes() == jpeg


CONSOLE_STACK = ("fastapi", "starlette", "uvicorn", "sse_starlette", "sqlalchemy", "alembic", "psycopg")


def test_a_box_without_the_console_extra_has_none_of_its_stack_and_runs(
    box: Path,
    mosquitto: Mosquitto,  # noqa: F811
) -> None:
    """The runtime lock alone: no web framework, SQL toolkit or database driver in the venv, and
    `edge-agent run` works there (it would fail at its first import of any of them)."""
    python = str(box / "venv" / "bin" / "python")
    probe = f"import importlib.util as u; print([m for m in {CONSOLE_STACK!r} if u.find_spec(m)])"
    found = subprocess.run([python, "-c", probe], cwd=box, env=clean_env(box), capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert found.stdout.strip() == "[]"

    config = write_config(box, mosquitto.url)
    models, env = model_dir_of(box)
    if not (models / "yolox_nano.onnx").is_file():
        cache = str(SHARED / "models")
        fetched = edge_agent(box, "models", "fetch", "yolox-nano", EDGE_AGENT_MODEL_CACHE=cache, **env)
        assert fetched.returncode == 0, fetched.stderr
    run = subprocess.Popen(
        [str(box / "venv" / "bin" / "edge-agent"), "run", "--config", str(config)],
        cwd=box, env=clean_env(box, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with Subscriber(mosquitto.port, ["eagleeye/v1/laohu/edge-01/status"]) as sub:
            sub.wait_for(lambda m: any(x.json().get("state") == "online" for x in m), 60)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, err
    assert "Traceback" not in err


def test_the_console_without_its_extra_says_what_to_install(box: Path, tmp_path: Path) -> None:
    config = tmp_path / "console.yaml"
    config.write_text("version: 1\nmqtt: {url: 'mqtt://127.0.0.1:1'}\n")
    result = edge_agent(box, "console", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "edge-agent[console]" in result.stderr
    assert "Traceback" not in result.stderr
