"""Files and folders only the service user may read: 0600 and 0700 whatever the umask.

A config backup holds what the config holds (camera addresses, `${VAR}` names, sometimes a
password), so the agent creates what it writes private; a umask of 022 under a shell or
`sudo` must not make it world-readable. Modes are set explicitly after creation because
`mkdir(mode=…)` and `open(…, mode)` are both filtered through the umask.
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
