"""A config's text read by the town without its secrets, and the secrets put back when an
edited copy comes back (`core.config_secrets`, the box's `config-get` and `config-set`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge_agent.app.command_actions import Actions
from edge_agent.contract.commands import Command, CommandResult, new_command
from edge_agent.core.config_secrets import SecretsError, redact_config_text, restore_config_secrets

CONFIG = """\
version: 1
mqtt:
  url: mqtts://edge-01:br0ker#pw@broker.town:8883
  username: edge-01
  password: "hunter 2"   # the broker's
  password_file_hint: none
cameras:
  - {id: gate, url: "rtsp://admin:p%23ss@10.0.0.5:554/stream1", fps: 5}
  - id: lane
    url: rtsp://viewer@10.0.0.6/live   # no password
  - id: file
    url: fixtures/walkway-a.mp4
"""


def test_every_password_is_hidden_and_nothing_else_changes() -> None:
    shown = redact_config_text(CONFIG)
    for secret in ("br0ker#pw", "hunter 2", "p%23ss"):
        assert secret not in shown
    assert "mqtts://edge-01:***@broker.town:8883" in shown
    assert "password: '***'   # the broker's" in shown
    assert '"rtsp://admin:***@10.0.0.5:554/stream1"' in shown
    assert "rtsp://viewer:***@10.0.0.6/live" in shown
    assert len(shown.splitlines()) == len(CONFIG.splitlines())
    assert [a for a, b in zip(CONFIG.splitlines(), shown.splitlines(), strict=True) if a != b] == [
        CONFIG.splitlines()[i] for i in (2, 4, 7, 9)
    ]


def test_an_edited_copy_gets_the_boxs_own_secrets_back() -> None:
    edited = redact_config_text(CONFIG).replace("fps: 5", "fps: 2") + "# moved the gate's zone\n"
    assert (
        restore_config_secrets(edited, CONFIG)
        == CONFIG.replace("fps: 5", "fps: 2") + "# moved the gate's zone\n"
    )
    # a password typed in by the town is kept as written
    typed = redact_config_text(CONFIG).replace("admin:***@", "admin:new-one@")
    assert "rtsp://admin:new-one@10.0.0.5" in restore_config_secrets(typed, CONFIG)


@pytest.mark.parametrize(
    ("edited", "named"),
    [
        ("url: rtsp://admin:***@10.0.0.9/other\n", "rtsp://admin:***@10.0.0.9/other"),  # another host
        (
            "url: rtsp://root:***@10.0.0.5:554/stream1\n",
            "rtsp://root:***@10.0.0.5:554/stream1",
        ),  # another user
        ("mqtt: {password: '***'}\n", "password: ***"),
    ],
)
def test_a_hidden_password_the_box_does_not_have_is_refused_by_name(edited: str, named: str) -> None:
    current = CONFIG if "rtsp" in edited else "mqtt: {url: 'mqtt://b'}\n"
    with pytest.raises(SecretsError) as err:
        restore_config_secrets(edited, current)
    assert named in str(err.value)
    assert "p%23ss" not in str(err.value) and "hunter" not in str(err.value)


class _Applied(Exception):
    pass


def _actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Actions, list[str]]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    agent: Any = SimpleNamespace(
        cfg=SimpleNamespace(site=SimpleNamespace(id="laohu"), device=SimpleNamespace(id="edge-01")),
        config_path=str(config),
    )
    applied: list[str] = []

    def apply(self: Actions, cmd: Command, text: str) -> CommandResult:
        applied.append(text)
        return self._result(cmd, "applied", "kept")

    monkeypatch.setattr(Actions, "apply", apply)
    return Actions(agent), applied


def test_the_box_sends_its_config_without_secrets_and_takes_an_edited_copy_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions, applied = _actions(tmp_path, monkeypatch)
    got = actions(new_command("laohu", "edge-01", "config-get"))
    assert got.state == "applied" and got.data["sha256"] == hashlib.sha256(CONFIG.encode()).hexdigest()
    assert got.data["text"] == redact_config_text(CONFIG)
    edited = got.data["text"].replace("fps: 5", "fps: 2")
    done = actions(
        new_command("laohu", "edge-01", "config-set", {"config": edited, "base_sha256": got.data["sha256"]})
    )
    assert done.state == "applied" and applied == [CONFIG.replace("fps: 5", "fps: 2")]
    # edited from an older copy: refused, nothing applied
    stale = actions(
        new_command("laohu", "edge-01", "config-set", {"config": edited, "base_sha256": "0" * 64})
    )
    assert stale.state == "refused" and "changed since this copy was read" in stale.message
    # a hidden password the box cannot fill in: refused, nothing applied
    unknown = actions(
        new_command("laohu", "edge-01", "config-set", {"config": "url: rtsp://x:***@elsewhere/\n"})
    )
    assert unknown.state == "refused" and "rtsp://x:***@elsewhere/" in unknown.message
    assert len(applied) == 1
