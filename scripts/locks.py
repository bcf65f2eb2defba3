"""Read the lock files (requirements/*.lock) and compare them with what a venv holds.

    python scripts/locks.py LOCK VENV   # the packages whose version in VENV differs from LOCK

Used by `make upgrade-check` and by tests/test_lock.py; it needs only `packaging`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def pins(lock: Path, environment: dict[str, str] | None = None) -> dict[str, str]:
    """{package: version} of a lock's pins whose markers hold for `environment` (default: this Python)."""
    out: dict[str, str] = {}
    for raw in lock.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "--")):
            continue
        req = Requirement(line.rstrip("\\").strip())
        if req.marker is not None and not req.marker.evaluate(environment):
            continue
        (spec,) = req.specifier  # a lock pins exactly one version
        if spec.operator != "==":
            raise ValueError(f"{lock}: {req.name} is not pinned with ==")
        out[canonicalize_name(req.name)] = spec.version
    return out


def installed(python: str | Path) -> dict[str, str]:
    """{package: version} of the distributions in the environment of `python`."""
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    text = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout
    return {canonicalize_name(k): v for k, v in json.loads(text).items()}


def moved(
    lock: Path, python: str | Path, ignore: tuple[str, ...] = ("edge-agent", "pip", "setuptools")
) -> list[str]:
    """Lines `name: locked -> installed` for every package that differs (or is only on one side)."""
    want, have = pins(lock), installed(python)
    lines = []
    for name in sorted(set(want) | set(have)):
        if name in ignore or want.get(name) == have.get(name):
            continue
        lines.append(f"- {name}: {want.get(name, 'not locked')} -> {have.get(name, 'not installed')}")
    return lines


if __name__ == "__main__":
    lock_file, venv = Path(sys.argv[1]), Path(sys.argv[2])
    print("\n".join(moved(lock_file, venv / "bin" / "python")))
