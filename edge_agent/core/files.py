"""Files and folders only the service user may read: 0600 and 0700 whatever the umask.

What the agent stores names places and people (outbox items, evidence pictures) or holds
what the config holds (a backup: camera addresses, `${VAR}` names, sometimes a password).
Outside systemd's `UMask=0077` a shell's or `sudo`'s umask of 022 would make them 0644/0755,
so modes are set explicitly after creation: `mkdir(mode=…)` and `open(…, mode)` are both
filtered through the umask.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and missing parents) as 0700; an existing folder keeps its mode."""
    p = Path(path)
    missing = []
    probe = p
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    p.mkdir(parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, DIR_MODE)
    return p


def create_private_file(path: Path) -> int:
    """Open `path` for writing, created or truncated, mode 0600 whatever the umask; returns the fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE) -> None:
    """Write `data` to `path` atomically (temp file, fsync, rename) with `mode`, never wider."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
