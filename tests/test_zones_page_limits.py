"""The zone page refuses hostile requests with an HTTP answer, never a traceback or a hang.

Before: `Content-Length: -1` read an unbounded body (400 MB -> 738 MB RSS), `abc` and deeply
nested JSON raised in the handler with no response, a POST from another origin was taken,
and a 10,000-point polygon was saved.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.core.files import private_dir, write_private
from edge_agent.tools.zones_page import ZonesServer
from tests.test_zones_page import cfg_path, fetch, post_json  # noqa: F401


@pytest.fixture
def server(cfg_path: Path) -> Iterator[ZonesServer]:  # noqa: F811
    srv = ZonesServer(cfg_path, None, "127.0.0.1", 0, None)
    srv.start()
    yield srv
    srv.stop()


def raw_post(srv: ZonesServer, headers: dict[str, str], body: bytes = b"") -> tuple[int, Any]:
    """One POST as written here (no client library fixing the headers); the status and JSON body."""
    lines = ["POST /api/zones HTTP/1.1", f"Host: 127.0.0.1:{srv.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as sock:
        # The write side stays open, as a slow or hostile client keeps it: a server that reads
        # past what it was told (Content-Length -1 read to the end) never answers.
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data, "no answer at all"
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload) if payload else None


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("length", "status"),
    [("-1", 400), ("abc", 400), ("1e3", 400), ("99999999999", 413), (None, 411)],
)
def test_a_bad_content_length_is_refused_before_reading(
    server: ZonesServer,
    cfg_path: Path,  # noqa: F811
    length: str | None,
    status: int,
) -> None:
    before = cfg_path.read_bytes()
    headers = dict(JSON) | ({"Content-Length": length} if length is not None else {})
    got, body = raw_post(server, headers, b'{"camera": "walkway"}' * 10)
    assert got == status and body["ok"] is False
    assert cfg_path.read_bytes() == before


def test_deeply_nested_json_is_a_400(server: ZonesServer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    status, body = raw_post(server, JSON | {"Content-Length": str(len(deep))}, deep)
    assert status == 400 and "nested" in body["problems"][0]["message"]


def test_a_post_from_another_origin_is_refused(server: ZonesServer, cfg_path: Path) -> None:  # noqa: F811
    before = cfg_path.read_bytes()
    shapes = json.loads(fetch(f"{server.url}api/config")[1])
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        status, body = post_json(f"{server.url}api/zones", shapes, headers)
        assert status == 403, (headers, body)
    assert cfg_path.read_bytes() == before
    # the page itself sends its own origin, and is let through
    status, _ = post_json(f"{server.url}api/zones", shapes, {"Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 200


def test_a_huge_polygon_is_refused(server: ZonesServer, cfg_path: Path) -> None:  # noqa: F811
    before = cfg_path.read_bytes()
    shapes = json.loads(fetch(f"{server.url}api/config")[1])
    shapes["zones"]["lawn"] = {"polygon": [[(i % 100) / 100, (i // 100) / 100] for i in range(10_000)]}
    status, body = post_json(f"{server.url}api/zones", shapes)
    assert status == 400 and "zones.lawn.polygon" in body["problems"][0]["path"], body
    assert cfg_path.read_bytes() == before


def test_backup_and_private_files_are_owner_only_whatever_the_umask(
    server: ZonesServer,
    cfg_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        cfg_path.chmod(0o644)  # an installer's config readable by the service group
        shapes = json.loads(fetch(f"{server.url}api/config")[1])
        del shapes["masks"][0]
        assert post_json(f"{server.url}api/zones", shapes)[0] == 200
        assert (cfg_path.parent / "config.yaml.bak").stat().st_mode & 0o777 == 0o600
        assert cfg_path.stat().st_mode & 0o777 == 0o644  # the config keeps its own mode
        folder = private_dir(tmp_path / "a" / "b")
        write_private(folder / "f", b"x")
        assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700 and folder.stat().st_mode & 0o777 == 0o700
        assert (folder / "f").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
