"""Private files and folders: what the agent stores names places and people.

Files the outbox and the evidence store make are 0600 and the folders they
make 0700, whatever the umask of the shell or service that started the agent
(outside systemd's `UMask=0077` a default umask would give 0644/0755).
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dir(directory: Path) -> None:
    """Create `directory` (and missing parents) 0700; an existing folder is left as it is."""
    if directory.is_dir():
        return
    missing = []
    here = directory
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    directory.mkdir(parents=True, exist_ok=True)
    for made in missing:
        os.chmod(made, DIR_MODE)


def create_private_file(path: Path) -> int:
    """Open `path` for writing, created or truncated, mode 0600 whatever the umask; returns the fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd
