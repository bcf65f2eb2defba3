"""Signed commands without a broker: the signed bytes, every refusal, the seen ids, the keys, the CLI."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import paho.mqtt.publish as publish
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.app.commands import CommandListener, SeenIds
from edge_agent.contract.commands import (
    Command,
    CommandError,
    CommandResult,
    KeyFileError,
    canonical_bytes,
    generate_keys,
    load_private_key,
    load_public_key,
    new_command,
    parse_command,
    parse_result,
)
from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from edge_agent.core.config import MqttConfig
from edge_agent.main import CONSOLE_COMMANDS, FLEET_COMMANDS, command_of
from tests.broker import Mosquitto, Subscriber, mosquitto  # noqa: F401
from tests.conftest import REPO
from tests.rtsp import wait_until

TOPICS = Topics("eagleeye", "laohu", "edge-01")
NOW = 1_800_000_000.0


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    generate_keys(tmp_path / "town.key", tmp_path / "town.pub")
    return load_private_key(tmp_path / "town.key"), tmp_path / "town.pub"


def signed(key: Ed25519PrivateKey, action: str = "ping", **kw: object) -> Command:
    args = kw.pop("args", {})
    return new_command("laohu", "edge-01", action, args, now=NOW, **kw).signed_with(key)  # type: ignore[arg-type]


def test_signed_bytes_are_sorted_compact_utf8_without_the_signature() -> None:
    body = {"b": 1, "a": {"z": "村", "y": [True, None]}, "signature": "x"}
    assert canonical_bytes(body) == '{"a":{"y":[true,null],"z":"村"},"b":1}'.encode()


def test_a_signed_command_round_trips_and_matches_its_schema(keys: tuple[Ed25519PrivateKey, Path]) -> None:
    key, pub = keys
    cmd = signed(key, "config-set", args={"config": "version: 1\nsite: {id: 涝湖}\n"})
    assert not validate("command", cmd.to_json())
    again = parse_command(cmd.payload())
    assert again == cmd
    again.verify(load_public_key(pub))
    again.check_time(NOW + 10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"args": {"config": "version: 2"}}, "bad signature"),
        ({"device": "edge-02"}, "bad signature"),
        ({"expires_at": "2030-01-01T00:00:00.000Z"}, "bad signature"),
        ({"signature": ""}, "unsigned command"),
        ({"signature": "not base64!"}, "bad signature"),
    ],
)
def test_any_change_to_a_signed_command_breaks_its_signature(
    keys: tuple[Ed25519PrivateKey, Path], change: dict[str, object], message: str
) -> None:
    key, pub = keys
    cmd = signed(key, "config-set", args={"config": "version: 1"})
    tampered = Command(**{**cmd.__dict__, **change})  # type: ignore[arg-type]
    with pytest.raises(CommandError, match=message):
        tampered.verify(load_public_key(pub))


def test_another_key_is_refused(keys: tuple[Ed25519PrivateKey, Path]) -> None:
    _, pub = keys
    with pytest.raises(CommandError, match="bad signature"):
        signed(Ed25519PrivateKey.generate()).verify(load_public_key(pub))


@pytest.mark.parametrize(
    ("now", "ttl_s", "message"),
    [
        (NOW + 3600, 3600, "expired at"),
        (NOW + 7200, 3600, "expired at"),
        (NOW - 600, 3600, "ahead of the box's clock"),
    ],
)
def test_time_checks(keys: tuple[Ed25519PrivateKey, Path], now: float, ttl_s: float, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        signed(keys[0], ttl_s=ttl_s).check_time(now)


def test_lifetime_and_arguments_are_bounded() -> None:
    with pytest.raises(CommandError, match="ttl must be between"):
        new_command("laohu", "edge-01", "ping", ttl_s=8 * 86400)
    with pytest.raises(CommandError, match=r"args\.zone\.x: numbers in command arguments must be integers"):
        new_command("laohu", "edge-01", "ping", {"zone": {"x": 0.5}})
    with pytest.raises(CommandError, match="unknown action 'reboot'"):
        new_command("laohu", "edge-01", "reboot")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "command is not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"schema": "eagleeye.command/1"}', "not an eagleeye.command/1"),
        (b"{" + b" " * (3 * 1024 * 1024) + b"}", "more than"),
    ],
)
def test_unreadable_commands(payload: bytes, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command(payload)


def test_a_result_matches_its_schema() -> None:
    result = CommandResult("abcdef0123456789", "ping", "laohu", "edge-01", "refused", "bad signature")
    assert not validate("command-result", result.to_json())
    assert result.to_json()["ok"] is False
    assert parse_result(result.payload()) == result


# --- the box's checks, without a broker -------------------------------------------------------


def listener(tmp_path: Path, pub: Path, ran: list[Command]) -> CommandListener:
    def handler(cmd: Command) -> CommandResult:
        ran.append(cmd)
        return CommandResult(cmd.id, cmd.action, "laohu", "edge-01", "applied", "pong")

    return CommandListener(
        MqttConfig(url="mqtt://127.0.0.1:1"), TOPICS, str(pub), tmp_path / "state", handler
    )


def test_the_box_refuses_what_is_not_for_it_and_runs_each_id_once_across_restarts(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    key, pub = keys
    ran: list[Command] = []
    box = listener(tmp_path, pub, ran)
    other_box = new_command("laohu", "edge-02", "ping", now=NOW).signed_with(key)
    result = box.take(TOPICS.command("ping"), other_box.payload(), NOW)
    assert result is not None and result.state == "refused" and "not this box" in result.message
    good = signed(key)
    result = box.take(TOPICS.command("snapshot"), good.payload(), NOW)
    assert result is not None and "a ping command sent on the topic of snapshot" in result.message
    assert box.take(TOPICS.command("ping"), b"garbage", NOW) is None  # no id to answer to
    assert ran == []

    result = box.take(TOPICS.command("ping"), good.payload(), NOW)
    assert result is not None and result.state == "applied" and ran == [good]
    # the same id again, after a restart of the agent: refused, not run
    restarted = listener(tmp_path, pub, ran)
    result = restarted.take(TOPICS.command("ping"), good.payload(), NOW + 1)
    assert result is not None and result.state == "refused" and "replayed" in result.message
    assert ran == [good]
    assert oct(stat.S_IMODE((tmp_path / "state" / "commands-seen.json").stat().st_mode)) == "0o600"


def test_seen_ids_are_forgotten_once_expired(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "seen.json")
    seen.add("old-command-1", NOW + 10, NOW)
    seen.add("new-command-1", NOW + 1000, NOW + 20)
    assert json.loads((tmp_path / "seen.json").read_text()) == {"new-command-1": NOW + 1000}
    (tmp_path / "bad.json").write_text("{not json")
    assert "x" not in SeenIds(tmp_path / "bad.json")  # logged; the expiry still bounds a replay


def test_a_box_without_a_readable_key_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "not-a-key.pub").write_text("hello\n")
    for path, message in ((tmp_path / "missing.pub", "cannot read the public key"),
                          (tmp_path / "not-a-key.pub", "is not a PEM public key")):  # fmt: skip
        with pytest.raises(KeyFileError, match=message):
            listener(tmp_path, path, [])


# --- the command line ---------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_command_words_go_to_the_fleet_command_line() -> None:
    assert FLEET_COMMANDS <= CONSOLE_COMMANDS
    assert command_of(["--log-level", "INFO", "command", "--config", "x"]) == "command"


def test_keys_generate_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    done = cli("keys", "generate", "--private", str(tmp_path / "k"), "--public", str(tmp_path / "k.pub"))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    load_public_key(tmp_path / "k.pub")
    again = cli("keys", "generate", "--private", str(tmp_path / "k"), "--public", str(tmp_path / "k2.pub"))
    assert again.returncode == 1 and "exists; remove it first" in again.stderr
    assert not (tmp_path / "k2.pub").exists()


def test_command_line_problems_are_one_line_each(tmp_path: Path) -> None:
    generate_keys(tmp_path / "k", tmp_path / "k.pub")
    console = {"version": 1, "mqtt": {"url": "mqtt://127.0.0.1:9"}, "web": {"port": 0}}
    path = tmp_path / "console.yaml"
    path.write_text(yaml.safe_dump(console))
    no_key = cli("command", "--config", str(path), "--device", "laohu/edge-01", "ping")
    assert no_key.returncode == 1 and "fleet.private_key_file" in no_key.stderr
    path.write_text(yaml.safe_dump(console | {"fleet": {"private_key_file": str(tmp_path / "k")}}))
    bad_device = cli("command", "--config", str(path), "--device", "edge-01", "ping")
    assert bad_device.returncode == 2 and "expected SITE/DEVICE" in bad_device.stderr
    unreachable = cli("command", "--config", str(path), "--device", "laohu/edge-01", "ping")
    assert (
        unreachable.returncode == 1
        and "cannot reach the MQTT broker mqtt://127.0.0.1:9" in unreachable.stderr
    )
    missing = cli("command", "--config", str(path), "--device", "laohu/edge-01", "config-set", "/nonexistent")
    assert missing.returncode == 1 and "cannot read the config file" in missing.stderr
    for result in (no_key, bad_device, unreachable, missing):
        assert "Traceback" not in result.stderr


def test_commands_config_keys(tmp_path: Path) -> None:
    from edge_agent.app.checks import check_text

    base = (REPO / "fixtures" / "walkway.yaml").read_text()
    base = base.replace("url: fixtures/walkway-a.mp4", f"url: {REPO}/fixtures/walkway-a.mp4")
    ok = check_text(base + "commands: {public_key_file: /etc/edge-agent/platform.pub, confirm_s: 30}\n", {})
    assert ok.cfg is not None and ok.cfg.commands.confirm_s == 30
    bad = check_text(base + "commands: {confirm_s: 0, public_key: x}\n", {})
    shown = [str(p) for p in bad.problems]
    assert any(p.startswith("commands.confirm_s") for p in shown), shown
    assert any(p.startswith("commands.public_key") and "public_key_file" in p for p in shown), shown
    assert ok.cfg.commands.public_key_file == "/etc/edge-agent/platform.pub"


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_command_sent_while_the_box_is_away_waits_for_it(
    tmp_path: Path,
    keys: tuple[Ed25519PrivateKey, Path],
    mosquitto: Mosquitto,  # noqa: F811
    protocol: str,
) -> None:
    key, pub = keys
    ran: list[Command] = []

    def handler(cmd: Command) -> CommandResult:
        ran.append(cmd)
        return CommandResult(cmd.id, cmd.action, "laohu", "edge-01", "applied", "pong")

    def box() -> CommandListener:
        cfg = MqttConfig(url=mosquitto.url, protocol=protocol)  # type: ignore[arg-type]
        return CommandListener(cfg, TOPICS, str(pub), tmp_path / "state", handler)

    first = box()
    first.start()
    wait_until(first.subscribed.is_set, 10, "subscribed")
    first.stop()
    cmd = new_command("laohu", "edge-01", "ping").signed_with(key)
    with Subscriber(mosquitto.port, [TOPICS.command_results_filter]) as sub:
        publish.single(
            TOPICS.command("ping"), cmd.payload(), qos=1, hostname="127.0.0.1", port=mosquitto.port
        )
        again = box()
        again.start()
        try:
            msgs = sub.wait_for(lambda m: len(m) >= 1, 15)
        finally:
            again.stop()
    assert [c.id for c in ran] == [cmd.id]
    assert json.loads(msgs[0].payload)["state"] == "applied"


def test_what_each_side_loads() -> None:
    """A box with remote operations off never maps `cryptography` (about 8 MB of RSS); the
    town's `edge-agent command` loads no web framework or database."""
    probe = (
        "import sys\n"
        "import edge_agent.app.agent, edge_agent.app.command_actions, edge_agent.tools.cli\n"
        "box = 'cryptography' in sys.modules\n"
        "import edge_agent.console.fleet_cli\n"
        "web = ('fastapi', 'starlette', 'sqlalchemy', 'alembic', 'uvicorn', 'psycopg')\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules if m.startswith(web)})\n"
        "print(box, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout == "False []\n"


def test_a_failing_action_or_an_unwritable_id_store_is_answered(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    key, pub = keys

    def broken(cmd: Command) -> CommandResult:
        raise RuntimeError("disk on fire")

    box = CommandListener(MqttConfig(url="mqtt://127.0.0.1:1"), TOPICS, str(pub), tmp_path / "state", broken)
    result = box.take(TOPICS.command("ping"), signed(key).payload(), NOW)
    assert result is not None and result.state == "refused"
    assert result.message == "the box could not run it: RuntimeError: disk on fire"
    (tmp_path / "state" / "commands-seen.json").unlink()
    (tmp_path / "state" / "commands-seen.json").mkdir()  # cannot be written any more
    ran: list[Command] = []
    box = listener(tmp_path, pub, ran)
    result = box.take(TOPICS.command("ping"), signed(key).payload(), NOW)
    assert (
        result is not None
        and result.state == "refused"
        and "cannot record the command's id" in result.message
    )
    assert ran == []


def test_doctor_checks_the_commands_key(tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]) -> None:
    from edge_agent.app.config import parse_config
    from edge_agent.tools.doctor import check_commands

    base = (REPO / "fixtures" / "walkway.yaml").read_text()
    assert check_commands(parse_config(base, {})) == []  # remote operations off: nothing to check
    (tmp_path / "rsa.pub").write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    for key_file, status, text in (
        (keys[1], "OK", f"signed by the key in {keys[1]}, confirmed for 60 s"),
        (tmp_path / "missing.pub", "FAIL", "cannot read the public key"),
        (tmp_path / "rsa.pub", "FAIL", "is not a PEM public key"),
    ):
        cfg = parse_config(base + f"commands: {{public_key_file: {key_file}}}\n", {})
        [check] = check_commands(cfg)
        assert (check.status, check.what) == (status, "commands") and text in check.detail, check
