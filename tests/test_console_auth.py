"""Who the console lets in: loopback trust (not by DNS rebinding), tokens, basic auth, Origin checks."""

from __future__ import annotations

import base64

import pytest

from edge_agent.console.auth import Authenticator, same_origin
from edge_agent.console.config import AuthConfig, TokenConfig, UserConfig

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
    ],
)  # fmt: skip
def test_state_changes_only_from_the_consoles_own_origin(
    headers: dict[str, str], public_url: str | None, ok: bool
) -> None:
    assert same_origin(headers, public_url) is ok
