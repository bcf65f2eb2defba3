"""Who the console lets in: loopback trust (not by DNS rebinding), tokens, basic auth, Origin checks;
first the rules, then a running console applying them to every page."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_agent.console.auth import Authenticator, same_origin
from edge_agent.console.config import AuthConfig, TokenConfig, UserConfig
from edge_agent.console.db import Database
from edge_agent.console.migrations import migrate
from edge_agent.console.web import ConsoleServer
from tests.test_console_web import config, store_events

TOKEN = "t" * 20


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(
        AuthConfig(
            users=[UserConfig(name="duty", password="pw")], tokens=[TokenConfig(name="wall", token=TOKEN)]
        )
    )


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("path", "headers", "peer", "who"),
    [
        ("/", {"Host": "127.0.0.1:8088"}, "127.0.0.1", "loopback"),
        ("/", {"Host": "localhost:8088"}, "::1", "loopback"),
        ("/", {"Host": "evil.example:8088"}, "127.0.0.1", None),  # DNS rebinding: a foreign name on loopback
        ("/", {"Host": "console.town:8088"}, "192.168.1.20", None),
        ("/", {"Host": "console.town", **basic("duty", "pw")}, "192.168.1.20", "duty"),
        ("/", {"Host": "console.town", **basic("duty", "wrong")}, "192.168.1.20", None),
        ("/", {"Host": "console.town", **basic("nobody", "pw")}, "192.168.1.20", None),
        (f"/?token={TOKEN}", {"Host": "console.town"}, "192.168.1.20", "wall"),
        ("/", {"Host": "console.town", "Authorization": f"Bearer {TOKEN}"}, "192.168.1.20", "wall"),
        ("/", {"Host": "console.town", "Cookie": f"edge_console_token={TOKEN}"}, "192.168.1.20", "wall"),
        ("/?token=not-the-token-at-all", {"Host": "127.0.0.1"}, "127.0.0.1", None),  # a wrong token is final
    ],
)  # fmt: skip
def test_who_gets_in(
    auth: Authenticator, path: str, headers: dict[str, str], peer: str, who: str | None
) -> None:
    principal = auth.check(path, headers, peer)
    assert (principal.name if principal else None) == who


def test_loopback_trust_can_be_turned_off() -> None:
    strict = Authenticator(AuthConfig(trust_loopback=False, tokens=[TokenConfig(name="w", token=TOKEN)]))
    assert strict.check("/", {"Host": "127.0.0.1"}, "127.0.0.1") is None


@pytest.mark.parametrize(
    ("headers", "public_url", "ok"),
    [
        ({"Host": "console.town:8088"}, None, True),  # no Origin: not a browser's cross-site request
        ({"Host": "console.town:8088", "Origin": "http://console.town:8088"}, None, True),
        ({"Host": "console.town:8088", "Origin": "http://evil.example"}, None, False),
        ({"Host": "10.0.0.5:8088", "Origin": "https://console.town"}, "https://console.town/", True),
        ({"Host": "10.0.0.5:8088", "Origin": "null"}, None, False),
        ({"Host": "console.town:8088", "Sec-Fetch-Site": "cross-site"}, None, False),
        ({"Host": "console.town:8088", "Sec-Fetch-Site": "same-origin",
          "Origin": "http://console.town:8088"}, None, True),
    ],
)  # fmt: skip
def test_state_changes_only_from_the_consoles_own_origin(
    headers: dict[str, str], public_url: str | None, ok: bool
) -> None:
    assert same_origin(headers, public_url) is ok


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[ConsoleServer, Database]]:
    """A running console that trusts nobody by address: basic auth or a token."""
    db = Database(f"sqlite:///{tmp_path}/c.sqlite3")
    migrate(db)
    cfg = config(
        db.url,
        web="{bind: 127.0.0.1, port: 0, auth: {trust_loopback: false,"
        f" users: [{{name: duty, password: pw}}], tokens: [{{name: wall, token: {TOKEN}}}]}}}}",
    )
    srv = ConsoleServer(cfg, db)
    srv.start()
    yield srv, db
    srv.stop()
    db.close()


def test_the_running_console_asks_for_a_login_and_records_who_acted(
    guarded: tuple[ConsoleServer, Database],
) -> None:
    srv, db = guarded
    (event_id,) = store_events(db, 1)
    anon = httpx.get(srv.url + "api/incidents")
    assert anon.status_code == 401 and anon.headers["www-authenticate"].startswith("Basic")
    assert "error" in anon.json()
    assert httpx.get(srv.url, auth=("duty", "nope")).status_code == 401
    for path in ("", "static/console.css", "vendor/chart.umd.js", "api/openapi.json"):
        assert httpx.get(srv.url + path).status_code == 401, path  # pages too, not only the API
    r = httpx.post(f"{srv.url}api/incidents/{event_id}/state", json={"state": "acknowledged"},
                   auth=("duty", "pw"))  # fmt: skip
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "duty"
    audit = httpx.get(f"{srv.url}api/incidents/{event_id}", auth=("duty", "pw")).json()["audit"]
    assert [(a["who"], a["to_state"]) for a in audit] == [("duty", "acknowledged")]


def test_a_token_in_the_url_becomes_an_httponly_samesite_cookie(
    guarded: tuple[ConsoleServer, Database],
) -> None:
    srv, _ = guarded
    first = httpx.get(f"{srv.url}?token={TOKEN}")
    assert first.status_code == 200
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"edge_console_token={TOKEN}") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    with httpx.Client(cookies={"edge_console_token": TOKEN}) as client:  # as the browser then sends it
        me = client.get(srv.url + "api/me").json()
        assert me == {"name": "wall", "via": "token"}
    assert "set-cookie" not in httpx.get(srv.url + "api/me", headers={"X-Console-Token": TOKEN}).headers
    assert httpx.get(srv.url + "api/me", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401


def test_loopback_trust_over_http_needs_a_loopback_host(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/c.sqlite3")
    migrate(db)
    srv = ConsoleServer(config(db.url), db)
    srv.start()
    try:
        assert httpx.get(srv.url + "api/me").json() == {"name": "loopback", "via": "loopback"}
        rebound = httpx.get(srv.url + "api/me", headers={"Host": f"evil.example:{srv.port}"})
        assert rebound.status_code == 401
    finally:
        srv.stop()
        db.close()
