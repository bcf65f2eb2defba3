"""The evidence store: one `<event_id>.jpg` per event start (and `<event_id>-owner.jpg`, the
crop of a left object's owner, and `<event_id>.mp4`, its clip), in a folder, under a quota.

The outbox holds what must reach the platform; these files are the box's local
copy. On a filling disk the evidence gives way first:

- a quota (`evidence.max_mb`, 1024 MB by default): past it the oldest pictures
  are removed, as a camera recorder overwrites its oldest footage;
- a reserve (`evidence.reserve_mb`, 64 MB by default): a picture is written only
  if the disk keeps that much free afterwards, first by removing the oldest
  pictures and else by not writing it (counted), so the outbox always has
  room to store events and to write its acks;
- clips (`.mp4`) have a quota of their own (`evidence.keep_mb`): past it the oldest
  clips are removed first, each counted (`clips_evicted`) and logged;
- a picture is written to `<event_id>.jpg.tmp` and renamed, and the temporary
  file is removed when the write fails, so a full disk leaves no partial file
  (a crash may: those are removed at the next start).

Files are 0600 and a folder the store makes 0700 (`core/files.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from edge_agent.core.files import create_private_file, private_dir

logger = logging.getLogger(__name__)

DEFAULT_MAX_MB = 1024.0
DEFAULT_RESERVE_MB = 64.0
DEFAULT_KEEP_MB = 512.0
_MB = 1024 * 1024


class EvidenceStore:
    """Writes `<event_id>.jpg` files into a directory, oldest removed first under the quota."""

    def __init__(
        self,
        directory: str | Path,
        max_mb: float = DEFAULT_MAX_MB,
        reserve_mb: float = DEFAULT_RESERVE_MB,
        keep_mb: float = DEFAULT_KEEP_MB,
    ) -> None:
        self.dir = Path(directory)
        self.max_bytes = int(max_mb * _MB)
        self.clip_max_bytes = int(keep_mb * _MB)
        self.clips_evicted = 0
        self.clip_bytes_evicted = 0
        self.reserve_bytes = int(reserve_mb * _MB)
        private_dir(self.dir)
        self.written = 0
        self.failed = 0
        self.refused_low_space = 0
        self.pruned = 0
        self._lock = threading.Lock()
        self._files: OrderedDict[str, int] = OrderedDict()  # name -> bytes, oldest first
        self._bytes = 0
        self._trouble: str | None = None
        self._scan()

    def _scan(self) -> None:
        found: list[tuple[float, str, int]] = []
        with os.scandir(self.dir) as entries:
            for entry in entries:
                if entry.name.endswith((".jpg.tmp", ".mp4.tmp")):  # left by a crash mid-write
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                elif entry.name.endswith((".jpg", ".mp4")) and entry.is_file():
                    st = entry.stat()
                    found.append((st.st_mtime, entry.name, st.st_size))
        for _, name, size in sorted(found):
            self._files[name] = size
            self._bytes += size

    def save(self, event_id: str, jpeg: bytes, suffix: str = "", ext: str = ".jpg") -> Path | None:
        """Write the file `<event_id><suffix><ext>` (the snapshot; `-owner`: the owner's crop;
        `.mp4`: the clip); None when it was not written (no room, disk error): counted and logged."""
        path = self.dir / f"{event_id}{suffix}{ext}"
        with self._lock:
            if ext == ".mp4":
                self._evict_clips(len(jpeg))
            if not self._make_room(len(jpeg)):
                self.refused_low_space += 1
                self._report(
                    f"less than evidence.reserve_mb ({self.reserve_bytes // _MB} MB) would stay free"
                )
                return None
            tmp = path.with_suffix(f"{ext}.tmp")
            try:
                fd = create_private_file(tmp)
                try:
                    view = memoryview(jpeg)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                tmp.replace(path)
            except OSError as err:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                self.failed += 1
                self._report(f"cannot write {path}: {err.strerror or err}")
                return None
            old = self._files.pop(path.name, 0)
            self._files[path.name] = len(jpeg)
            self._bytes += len(jpeg) - old
            self.written += 1
            if self._trouble is not None:
                logger.warning("evidence pictures are written again in %s", self.dir)
                self._trouble = None
            return path

    def _make_room(self, needed: int) -> bool:
        """Remove the oldest pictures until the quota and the reserve allow `needed` bytes."""
        while self._files and self._bytes + needed > self.max_bytes:
            self._prune_oldest()
        while self._free() - needed < self.reserve_bytes:
            if not self._files:
                return False
            self._prune_oldest()
        return True

    def _evict_clips(self, needed: int) -> None:
        """The oldest clips go until `needed` more bytes of clips stay within `keep_mb`."""
        clips = [(n, s) for n, s in self._files.items() if n.endswith(".mp4")]  # oldest first
        total = sum(s for _, s in clips)
        for name, size in clips:
            if total + needed <= self.clip_max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()
            del self._files[name]
            self._bytes -= size
            total -= size
            self.clips_evicted += 1
            self.clip_bytes_evicted += size
            logger.info("evidence.keep_mb: removed the oldest clip %s (%d bytes)", name, size)

    def _free(self) -> int:
        try:
            return int(shutil.disk_usage(self.dir).free)
        except OSError:
            return 0

    def _prune_oldest(self) -> None:
        name, size = self._files.popitem(last=False)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / name).unlink()
        self._bytes -= size
        self.pruned += 1

    def _report(self, why: str) -> None:
        # One line when pictures stop being written, one when they are written again.
        if self._trouble is None:
            logger.error("evidence pictures are not written (%s); events still go to the outbox", why)
        self._trouble = why

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {
                "written": self.written,
                "failed": self.failed,
                "refused_low_space": self.refused_low_space,
                "pruned": self.pruned,
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "clip_bytes": sum(s for n, s in self._files.items() if n.endswith(".mp4")),
                "clip_max_bytes": self.clip_max_bytes,
                "clips_evicted": self.clips_evicted,
                "clip_bytes_evicted": self.clip_bytes_evicted,
            }
