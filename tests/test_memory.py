"""glibc's malloc settings of the agent (app/memory.py): arenas capped, free pages given back."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.app.memory import MallocTrim

REPO = Path(__file__).resolve().parents[1]
GLIBC = platform.libc_ver()[0] == "glibc"


def rss_anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_the_trim_runs_once_per_period_on_the_callers_clock() -> None:
    calls: list[int] = []
    trim = MallocTrim(every_s=5.0, trim=lambda: calls.append(1) is None)
    for now in (100.0, 101.0, 104.9):
        trim.tick(now)
    assert calls == []  # the first tick starts the clock
    trim.tick(105.0)
    assert len(calls) == 1
    trim.tick(109.0)
    assert len(calls) == 1
    trim.tick(110.0)
    trim.tick(200.0)  # a late tick trims once, not once per missed period
    assert len(calls) == trim.trims == 3


def test_without_glibc_the_trim_does_nothing() -> None:
    trim = MallocTrim(every_s=0.0, trim=None)
    trim._trim = None  # as on a C library without malloc_trim
    trim.tick(0.0)
    trim.tick(10.0)
    assert trim.trims == 0


FREE_AND_TRIM = """
import json, sys
from edge_agent.app.memory import glibc_trim, limit_malloc_arenas
from tests.test_memory import rss_anon_mb

limit_malloc_arenas()  # as the agent starts
trim = glibc_trim()
before = rss_anon_mb()
big = [bytearray(100_000) for _ in range(600)]  # 100 kB: under the mmap threshold, in the heap
keep = []
for buf in big:
    keep.append(bytearray(1000))  # pins the heap around each big buffer
    buf[::4096] = b"x" * len(buf[::4096])  # touched: resident
grown = rss_anon_mb()
del big
kept = rss_anon_mb()
trim()
print(json.dumps({"before": before, "grown": grown, "kept": kept, "after": rss_anon_mb()}))
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; the agent's boxes and CI run Debian")
def test_freed_frame_buffers_go_back_to_the_system() -> None:
    """Frame-sized buffers freed between small ones that stay (a reader's frames between the
    pipeline's small objects) stay in the heap as RSS until the trim gives them back. In a
    process of its own, started as the agent is."""
    out = subprocess.run(
        [sys.executable, "-c", FREE_AND_TRIM], cwd=REPO, capture_output=True, text=True, check=True
    )
    mb = json.loads(out.stdout)
    assert mb["grown"] - mb["before"] > 40, mb
    assert mb["kept"] - mb["grown"] > -5, f"freeing alone gives nothing back: {mb}"
    assert mb["kept"] - mb["after"] > 40, f"RSS anon (MB) before and after the trim: {mb}"
