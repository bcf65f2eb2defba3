"""Config loading and `edge-agent validate`: every problem named with its path, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.app.config import load_config, parse_config
from edge_agent.core.config import ConfigError, redact
from edge_agent.core.config_load import check_config
from tests.conftest import REPO

GOOD = REPO / "tests" / "data" / "configs" / "good.yaml"
ENV = {"CAM1_PASS": "s3cret"}


def validate(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "validate", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env if env is not None else ENV)},
        timeout=60,
        check=False,
    )


def test_good_config_validates() -> None:
    proc = validate(GOOD)
    assert proc.returncode == 0, proc.stderr
    assert "OK (1 cameras, 2 rules)" in proc.stdout


def test_env_vars_are_expanded() -> None:
    cfg = load_config(GOOD, env=ENV)
    assert cfg.cameras[0].url.startswith("rtsp://admin:s3cret@")


# (a) unknown key, (b) missing zone, (c) point outside 0..1, (d) unknown label, (e) malformed YAML
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "stationary: true,",
            "stationary: true, colour: red,",
            "cameras[0].rules[0].colour: unknown key 'colour' (expected one of: id, labels,",
        ),
        (
            "zone: road,",
            "zone: rood,",
            "cameras[0].rules[0].zone: no zone named 'rood' (zones: dump-corner, road)",
        ),
        (
            "[0.45, 0.55]",
            "[1.45, 0.55]",
            "cameras[0].zones.dump-corner.polygon: point 1 [1.45, 0.55] is outside",
        ),
        (
            "labels: [car, truck]",
            "labels: [car, lorry]",
            "cameras[0].rules[0].labels[1]: the model does not know",
        ),
        ("site: {id: laohu", "site: {id: laohu:", "malformed YAML at line"),
        ("direction: in}", "direction: sideways}", "cameras[0].rules[1].direction:"),
        ("line: gate,", "line: fence,", "cameras[0].rules[1].line: no line named 'fence' (lines: gate)"),
    ],
)
def test_validate_names_each_problem_with_its_path(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = GOOD.read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    proc = validate(bad)
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_reports_every_problem_at_once(tmp_path: Path) -> None:
    text = GOOD.read_text().replace("stationary: true,", "stationary: true, colour: red,")
    text = text.replace("[0.45, 0.55]", "[1.45, 0.55]").replace("device: {id: edge-01}", "device: {}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = validate(bad)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert any(line.startswith("device.id: required key is missing") for line in lines)


def test_missing_env_var_is_named_and_secret_never_printed(tmp_path: Path) -> None:
    proc = validate(GOOD, env={})
    assert proc.returncode == 1
    assert "cameras[0].url: environment variable CAM1_PASS is not set" in proc.stderr


def test_bad_url_password_is_redacted_in_errors() -> None:
    text = GOOD.read_text().replace("mqtt", "mqtt")
    text += "mqtt: {url: 'http://user:hunter2@broker'}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, env=ENV)
    assert "hunter2" not in str(err.value)
    assert "mqtt.url" in str(err.value)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    proc = validate(tmp_path / "nope.yaml")
    assert proc.returncode == 1
    assert "cannot read the config file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_usage_error_exits_2() -> None:
    # (`validate` alone is no usage error: it checks the default config, see test_cli_box.py)
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent", "validate", "--no-such-option"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:pa55@10.0.0.1:554/x", "rtsp://admin:***@10.0.0.1:554/x"),
        # a raw '@', '#', '/' or '?' in a password: all of it hidden (it leaked in part before)
        ("mqtts://dev:p@ss@broker:8883", "mqtts://dev:***@broker:8883"),
        ("rtsp://admin:S3cr#t@host/x", "rtsp://admin:***@host/x"),
        ("rtsp://admin:a/b@host:554/x", "rtsp://admin:***@host:554/x"),
        ("rtsp://admin:a?b@host/x", "rtsp://admin:***@host/x"),
        ("'rtsp://admin:p%23ss@host/x' failed", "'rtsp://admin:***@host/x' failed"),
        ("rtsp://10.0.0.1/x", "rtsp://10.0.0.1/x"),
        ("see rtsp://u:p@h/a and rtsp://v:q@i/b", "see rtsp://u:***@h/a and rtsp://v:***@i/b"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_check_config_flags_duplicate_ids() -> None:
    cfg = load_config(GOOD, env=ENV)
    dup = cfg.model_copy(update={"cameras": [cfg.cameras[0], cfg.cameras[0]]})
    problems = check_config(dup, None)
    assert [p.path for p in problems] == ["cameras[1].id"]
