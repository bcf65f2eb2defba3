"""The console's web server as a client meets it: body limits on raw sockets, read-only, the
generated OpenAPI, the live stream woken by commits, CSV, and clients that leave early.

The server is the real one (`ConsoleServer`: uvicorn on a loopback port, in this process)
over a real SQLite database with incidents written through the ingest's own path.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from edge_agent.console import routes_stream
from edge_agent.console.config import ConsoleConfig, parse_console_config
from edge_agent.console.db import Database
from edge_agent.console.ingest import Ingest
from edge_agent.console.migrations import migrate
from edge_agent.console.records import parse_message
from edge_agent.console.store import write_batch
from edge_agent.console.web import ROUTERS, ConsoleServer
from tests.broker import Mosquitto, fake_jpeg, free_port, make_event, mosquitto  # noqa: F401

BASE = "eagleeye/v1/laohu/edge-01"
JSON = {"Content-Type": "application/json"}


def config(db_url: str, extra: str = "", web: str = "{bind: 127.0.0.1, port: 0}") -> ConsoleConfig:
    return parse_console_config(
        f"version: 1\nmqtt: {{url: 'mqtt://127.0.0.1:1'}}\ndatabase: {{url: '{db_url}'}}\nweb: {web}\n{extra}"
    )


def store_events(
    db: Database, *seqs: int, severity: str = "alert", snapshot: bool = False, jpeg_bytes: int = 2000
) -> list[str]:
    """Events through the ingest's parse and write, as if they had come from a box."""
    messages = []
    for seq in seqs:
        jpeg = fake_jpeg(seq, jpeg_bytes) if snapshot else None
        ev = make_event(seq, severity=severity, snapshot=jpeg).to_dict()
        messages.append((f"{BASE}/events/{ev['camera']}/{ev['rule']}", json.dumps(ev).encode()))
        if jpeg is not None:
            messages.append((f"{BASE}/snapshots/{ev['event_id']}", jpeg))
    records = [parse_message("eagleeye", t, p) for t, p in messages]
    with db.transaction() as conn:
        write_batch(conn, records, time.time())
    return [f"edge-01-cam-a-{s:06d}" for s in seqs]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/console.sqlite3")
    migrate(database)
    yield database
    database.close()


def serve(db: Database, read_only: bool = False, extra: str = "") -> ConsoleServer:
    server = ConsoleServer(config(db.url, extra), db, read_only=read_only)
    server.start()
    return server


@pytest.fixture
def server(db: Database) -> Iterator[ConsoleServer]:
    srv = serve(db)
    yield srv
    srv.stop()


def raw_request(port: int, head: list[str], body: bytes = b"") -> tuple[int, dict[str, str], Any]:
    """One request as written here (no client library fixing its headers): status, headers, JSON.

    The write side stays open, as a slow or hostile client keeps it: a server that waits for
    a body it was promised (or reads to the end) never answers, and the read times out.
    """
    lines = [*head, f"Host: 127.0.0.1:{port}", "Connection: close"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data, "no answer at all"
    raw_head, _, payload = data.partition(b"\r\n\r\n")
    status = int(raw_head.split()[1])
    headers = {}
    for line in raw_head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, json.loads(payload) if payload.strip() else None


def audit_rows(db: Database) -> int:
    with db.connection() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM incident_audit").scalar_one())


@pytest.mark.parametrize(
    ("length", "status"),
    [("-1", 400), ("abc", 400), ("1e3", 400), ("99999999999", 413), ("64001", 413), (None, 411)],
)
def test_a_bad_content_length_is_refused_at_once_and_nothing_is_stored(
    server: ConsoleServer, db: Database, length: str | None, status: int
) -> None:
    (event_id,) = store_events(db, 1)
    body = json.dumps({"state": "acknowledged"}).encode()
    head = [f"POST /api/incidents/{event_id}/state HTTP/1.1", "Content-Type: application/json"]
    if length is not None:
        head.append(f"Content-Length: {length}")
    started = time.monotonic()
    got, headers, answer = raw_request(server.port, head, body)
    took = time.monotonic() - started
    assert got == status and "error" in answer, answer
    assert took < 2.0, f"answered after {took:.1f} s, not at once (the socket times out at 10 s)"
    assert headers.get("connection") == "close"
    assert audit_rows(db) == 0
    assert httpx.get(f"{server.url}api/incidents/{event_id}").json()["state"] == "new"


def test_chunked_bodies_are_refused_and_the_same_body_with_its_length_is_taken(
    server: ConsoleServer, db: Database
) -> None:
    (event_id,) = store_events(db, 2)
    body = json.dumps({"state": "acknowledged"}).encode()
    head = [f"POST /api/incidents/{event_id}/state HTTP/1.1", "Content-Type: application/json"]
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    got, _, answer = raw_request(server.port, [*head, "Transfer-Encoding: chunked"], chunked)
    assert got == 411 and audit_rows(db) == 0
    got, _, answer = raw_request(server.port, [*head, f"Content-Length: {len(body)}"], body)
    assert got == 200 and answer["state"] == "acknowledged" and answer["acknowledged_by"] == "loopback"


def test_posts_need_json_from_this_consoles_own_origin(server: ConsoleServer, db: Database) -> None:
    (event_id,) = store_events(db, 3)
    url = f"{server.url}api/incidents/{event_id}/state"
    form = httpx.post(url, content=b"state=acknowledged", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        r = httpx.post(url, json={"state": "acknowledged"}, headers=headers)
        assert r.status_code == 403 and "cross-site" in r.json()["error"]
    assert audit_rows(db) == 0
    bad = httpx.post(url, content=b'{"state": ', headers=JSON)
    assert bad.status_code == 400 and bad.json() == {"error": "malformed JSON"}
    deep = httpx.post(url, content=b"[" * 30_000 + b"]" * 30_000, headers=JSON)
    assert deep.status_code == 400 and "error" in deep.json()
    dispatch = httpx.post(url, json={"state": "dispatched"})  # dispatched needs a name
    assert dispatch.status_code == 422 and "assignee" in dispatch.json()["error"]
    unknown = httpx.post(url, json={"state": "closed"})
    assert unknown.status_code == 422 and unknown.json()["error"].startswith("state:")
    own = httpx.post(url, json={"state": "acknowledged"}, headers={"Origin": server.url.rstrip("/")})
    assert own.status_code == 200
    again = httpx.post(url, json={"state": "acknowledged"})
    assert again.status_code == 409
    missing = httpx.post(f"{server.url}api/incidents/no-such-event/state", json={"state": "acknowledged"})
    assert missing.status_code == 404


def test_a_read_only_console_refuses_every_post_and_says_so(db: Database) -> None:
    (event_id,) = store_events(db, 4)
    srv = serve(db, read_only=True)
    try:
        for path, body in [
            (f"api/incidents/{event_id}/state", {"state": "acknowledged"}),
            (f"api/incidents/{event_id}/notes", {"text": "seen"}),
            (f"api/incidents/{event_id}/verdict", {"verdict": "false_alarm"}),
            ("api/incidents/bulk", {"event_ids": [event_id], "state": "false_alarm"}),
        ]:
            r = httpx.post(srv.url + path, json=body)
            assert (r.status_code, r.json()) == (403, {"error": "read-only console"}), path
        assert httpx.get(srv.url + "api/settings").json()["read_only"] is True
        assert httpx.get(f"{srv.url}api/incidents/{event_id}").json()["state"] == "new"
    finally:
        srv.stop()
    assert audit_rows(db) == 0


def query_names(route: Any) -> set[str]:
    """The query parameters a route reads: each field of its query model, by its public name."""
    out = set()
    for dep in route.dependant.query_params:
        model = dep.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            out |= {f.alias or name for name, f in model.model_fields.items()}
        else:
            out.add(dep.alias)
    return out


def test_every_api_route_is_in_the_generated_openapi_with_its_query_parameters(
    server: ConsoleServer,
) -> None:
    spec = httpx.get(server.url + "api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    listed = 0
    for route in [r for router in ROUTERS for r in router.routes]:
        path = getattr(route, "path", "")
        if not path.startswith("/api/") or path == "/api/openapi.json":
            continue
        for method in route.methods - {"HEAD"}:  # type: ignore[attr-defined]
            op = spec["paths"][path][method.lower()]
            listed += 1
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            assert query_names(route) == names, path
    assert listed >= 18
    params = {p["name"] for p in spec["paths"]["/api/incidents"]["get"]["parameters"]}
    assert {"site", "device", "camera", "rule", "severity", "state", "tab", "from", "to", "limit"} <= params
    series = {p["name"] for p in spec["paths"]["/api/counts/series"]["get"]["parameters"]}
    assert {"bucket", "site", "camera", "rule", "from", "to"} <= series
    assert "requestBody" in spec["paths"]["/api/incidents/bulk"]["post"]
    assert {"basic", "bearer", "query", "cookie"} <= set(spec["components"]["securitySchemes"])


def test_bad_query_values_are_400_naming_the_parameter(server: ConsoleServer) -> None:
    for query, word in [("limit=5000", "limit"), ("from=yesterday", "from"), ("tab=some", "tab"),
                        ("state=closed", "state")]:  # fmt: skip
        r = httpx.get(f"{server.url}api/incidents?{query}")
        assert r.status_code == 400 and r.json()["error"].startswith(word), (query, r.text)
    r = httpx.get(f"{server.url}api/counts/series?bucket=week")
    assert r.status_code == 400 and r.json()["error"].startswith("bucket")
    assert httpx.get(f"{server.url}api/nothing-here").json() == {"error": "no page /api/nothing-here"}


def read_events(lines: Iterator[str], want: int, timeout_s: float) -> list[dict[str, Any]]:
    """The first `want` `incident` events of an open stream (or fewer when time runs out)."""
    out: list[dict[str, Any]] = []
    kind = ""
    deadline = time.monotonic() + timeout_s
    for line in lines:
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and kind == "incident":
            out.append(json.loads(line.split(":", 1)[1]))
            if len(out) >= want:
                break
        if time.monotonic() > deadline:
            break
    return out


def test_the_live_stream_is_woken_by_commits_not_by_its_own_polling(
    server: ConsoleServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No re-read for an hour: whatever arrives was pushed by a commit of this instance.
    monkeypatch.setattr(routes_stream, "REREAD_S", 3600.0)
    (old,) = store_events(db, 5)
    as_of = httpx.get(server.url + "api/incidents").json()["as_of"]
    time.sleep(0.01)
    with httpx.stream("GET", f"{server.url}api/stream?since={as_of}", timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        # The first read looks a few seconds behind `since` (another instance's commit may land
        # late): the incident from just before comes again, and says the stream has looked.
        assert [e["event_id"] for e in read_events(lines, 1, 10)] == [old]
        (new,) = store_events(db, 6)
        server.notify()  # what the ingest's on_commit does after each batch
        first = read_events(lines, 1, 10)
        assert [e["event_id"] for e in first] == [new]
        r = httpx.post(f"{server.url}api/incidents/{old}/state", json={"state": "false_alarm"})
        assert r.status_code == 200
        second = read_events(lines, 1, 10)
        assert [(e["event_id"], e["state"]) for e in second] == [(old, "false_alarm")]


def test_csv_exports_for_a_date_range(server: ConsoleServer, db: Database) -> None:
    store_events(db, 7, 8)
    r = httpx.get(f"{server.url}api/export/incidents.csv?from=2026-11-26&to=2026-11-27")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith(
        'attachment; filename="incidents-2026-11-26-2026-11-27'
    )
    lines = r.text.strip().splitlines()
    assert "event_id" in lines[0] and len(lines) == 3
    empty = httpx.get(f"{server.url}api/export/incidents.csv?from=2027-01-01&to=2027-01-02")
    assert empty.status_code == 200 and len(empty.text.strip().splitlines()) <= 1
    counts = httpx.get(f"{server.url}api/export/counts.csv?from=2026-11-26&to=2026-11-27")
    assert counts.status_code == 200 and counts.headers["content-type"].startswith("text/csv")


def test_clients_that_leave_mid_answer_leave_no_traceback(
    server: ConsoleServer, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    store_events(db, *range(10, 40))
    (big,) = store_events(db, 9, snapshot=True, jpeg_bytes=1_500_000)  # far more than a socket buffer
    caplog.set_level(logging.DEBUG)
    for path in ["api/stream?since=0", f"api/incidents/{big}/snapshot.jpg",
                 "api/export/incidents.csv?tab=all", "api/incidents?tab=all"]:  # fmt: skip
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        # closed with a reset while the answer (or the stream) goes on
    time.sleep(0.5)
    server.notify()  # the stream wakes, writes to a closed socket, and ends
    time.sleep(0.5)
    assert httpx.get(server.url + "api/me").json()["name"] == "loopback"  # still serving
    server.stop()
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
    assert "Traceback" not in caplog.text


def test_pages_and_vendor_files_are_served_and_nothing_outside_them(server: ConsoleServer) -> None:
    for path in ["", "incident/edge-01-cam-a-000001", "counts", "map"]:
        r = httpx.get(server.url + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert "default-src 'self'" in r.headers["content-security-policy"]
    assert httpx.get(server.url + "static/console.css").headers["content-type"].startswith("text/css")
    old = httpx.get(server.url + "alert/edge-01-cam-a-000001")  # the first release's links
    assert old.status_code == 301 and old.headers["location"] == "/incident/edge-01-cam-a-000001"
    for path in ["static/..%2fconfig.py", "static/../web.py", "vendor/../../web.py", "vendor/leaflet-src.js"]:
        assert httpx.get(server.url + path).status_code == 404, path
    vendor = httpx.get(server.url + "vendor/chart.umd.js")
    assert vendor.status_code == 200 and vendor.headers["content-type"].startswith("text/javascript")
    assert httpx.get(server.url + "vendor/leaflet.css").status_code == 200
    assert httpx.get(server.url + "vendor/images/layers.png").headers["content-type"] == "image/png"


def test_settings_and_map_carry_the_config(db: Database) -> None:
    tiles = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    srv = serve(db, extra=f"timezone: Asia/Shanghai\nmap: {{tile_url: '{tiles}', attribution: OSM}}\n")
    try:
        s = httpx.get(srv.url + "api/settings").json()
        assert (s["timezone"], s["tile_url"], s["tile_attribution"], s["user"]) == (
            "Asia/Shanghai", tiles, "OSM", "loopback")  # fmt: skip
        assert s["states"] == ["new", "acknowledged", "dispatched", "resolved", "false_alarm"]
        m = httpx.get(srv.url + "api/map")
        assert m.json()["tile_url"] == tiles and m.json()["sites"] == []
        assert "img-src 'self' data: https://tile.openstreetmap.org" in m.headers["content-security-policy"]
    finally:
        srv.stop()


def test_an_event_published_to_the_broker_reaches_an_open_stream_through_the_ingest(
    db: Database,
    mosquitto: Mosquitto,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Box -> broker -> ingest -> commit -> `on_commit` -> stream, with no re-read to fall back on."""
    import paho.mqtt.client as paho

    monkeypatch.setattr(routes_stream, "REREAD_S", 3600.0)
    cfg = config(db.url).model_copy(
        update={"mqtt": parse_console_config(f"version: 1\nmqtt: {{url: '{mosquitto.url}'}}\n").mqtt}
    )
    srv = ConsoleServer(cfg, db)
    srv.start()
    ingest = Ingest(cfg.mqtt, db, limits=cfg.limits, on_commit=srv.notify)
    srv.ingest = ingest
    ingest.start()
    box = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="box-edge-01")
    try:
        deadline = time.monotonic() + 10
        while not ingest.subscribed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ingest.subscribed
        with httpx.stream("GET", f"{srv.url}api/stream", timeout=10) as resp:
            lines = resp.iter_lines()
            assert (
                next(lines) == ": connected"
            )  # sent once the stream has read: it sees every commit from here
            ev = make_event(1, severity="alert").to_dict()
            host, port = mosquitto.url.removeprefix("mqtt://").rsplit(":", 1)
            box.connect(host, int(port))
            box.loop_start()
            box.publish(f"{BASE}/events/{ev['camera']}/{ev['rule']}", json.dumps(ev), qos=1).wait_for_publish(
                5
            )
            got = read_events(lines, 1, 10)
            assert [e["event_id"] for e in got] == [ev["event_id"]]
    finally:
        box.loop_stop()
        ingest.stop()
        srv.stop()


def test_an_unreachable_database_is_a_503_in_one_line_without_its_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    db = Database(f"postgresql://town:hunter22@127.0.0.1:{port}/console")
    srv = ConsoleServer(config(f"sqlite:///{tmp_path}/unused.db"), db)
    srv.start()
    try:
        for path in ("api/incidents", "api/stream", "api/health", "api/export/incidents.csv"):
            r = httpx.get(srv.url + path)
            assert r.status_code == 503, path
            error = r.json()["error"]
            assert error.startswith("database unavailable: ") and "Connection refused" in error
            assert "\n" not in error and "hunter22" not in error
    finally:
        srv.stop()
        db.close()
