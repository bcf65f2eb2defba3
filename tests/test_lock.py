"""The venv holds exactly what the lock files pin, and the locks agree with pyproject.toml.

`make setup` installs from requirements/*.lock with --require-hashes; these
tests fail when something else got in (an unpinned install, a stale venv) or
when a lock no longer satisfies the ranges pyproject.toml promises to users.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.locks import installed, moved, pins
from tests.conftest import REPO

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

LOCKS = REPO / "requirements"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# The lock covers these Pythons on Linux (requirements/README.md).
SUPPORTED = [
    ("3.10", "x86_64"),
    ("3.11", "aarch64"),
    ("3.11", "x86_64"),
    ("3.12", "x86_64"),
    ("3.13", "aarch64"),
]


def environment(python: str, machine: str) -> dict[str, str]:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_machine": machine,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def test_venv_holds_exactly_the_dev_lock() -> None:
    assert moved(LOCKS / "dev.lock", sys.executable) == []


def test_pip_and_setuptools_come_from_the_build_lock() -> None:
    build, have = pins(LOCKS / "build.lock"), installed(sys.executable)
    assert {name: have.get(name) for name in build} == build


def test_every_lock_line_carries_hashes() -> None:
    for lock in LOCKS.glob("*.lock"):
        text = lock.read_text(encoding="utf-8")
        entries = [
            block for block in text.split("\n") if block and not block[0].isspace() and block[0] != "#"
        ]
        assert entries, lock
        for entry in entries:
            assert entry.rstrip().endswith("\\"), f"{lock.name}: {entry} has no --hash lines"


@pytest.mark.parametrize("lock", ["runtime.lock", "console.lock"])
@pytest.mark.parametrize(("python", "machine"), SUPPORTED)
def test_deployment_pins_agree_with_dev_pins(lock: str, python: str, machine: str) -> None:
    env = environment(python, machine)
    deployed, dev = pins(LOCKS / lock, env), pins(LOCKS / "dev.lock", env)
    assert deployed, "no pins for this Python"
    assert {name: dev.get(name) for name in deployed} == deployed


@pytest.mark.parametrize(("python", "machine"), SUPPORTED)
def test_locked_versions_satisfy_pyproject_ranges(python: str, machine: str) -> None:
    env = environment(python, machine)
    dev = pins(LOCKS / "dev.lock", env)
    wanted = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["dev"]]
    for text in wanted:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in dev, f"{name} is in pyproject.toml but not locked for Python {python}"
        assert req.specifier.contains(dev[name], prereleases=True), f"{name}=={dev[name]} vs {req}"


def test_runtime_lock_holds_no_dev_tool() -> None:
    runtime = pins(LOCKS / "runtime.lock", environment("3.11", "aarch64"))
    for tool in ("pytest", "ruff", "mypy", "playwright", "onnx", "uv"):
        assert tool not in runtime, f"{tool} would be installed on every edge box"


def test_lock_reader_refuses_an_unpinned_line(tmp_path: Path) -> None:
    lock = tmp_path / "bad.lock"
    lock.write_text("numpy>=2 \\\n    --hash=sha256:" + "0" * 64 + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not pinned"):
        pins(lock)
