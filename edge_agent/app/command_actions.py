"""What each remote command does on the running agent: ping, config-get, config-set, snapshot, model-update.

config-get answers the config file's text with every password shown as `***`; a config-set
whose text still has such a `***` gets the box's own password back in that place
(`core.config_secrets`), so an edited copy of a read config can be pushed and no secret ever
travels to the town.

config-set is SIGHUP with a safety net: the new text passes the loader `validate` uses, is
written over the config (the old file kept beside it as `<config>.previous`), reloaded as
SIGHUP reloads, and watched for `commands.confirm_s`: every camera that was online (and every
new one) must be online at the end and no camera pipeline may fail meanwhile. Else the
previous file is written back and reloaded: `rolled_back`, with the reason. mqtt, outbox and
commands take effect only at a restart, after any watch could vouch for them, so a remote
config-set may not change them: a wrong broker address would cut the box off for good; nor the
site and device ids, which name the box's topics.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import json
import logging
import platform
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
from ruamel.yaml import YAML

from edge_agent.app.checks import check_text
from edge_agent.app.commands import CommandListener
from edge_agent.app.wiring import topics_of
from edge_agent.contract.commands import Command, CommandResult
from edge_agent.core.config import redact
from edge_agent.core.config_secrets import SecretsError, redact_config_text, restore_config_secrets
from edge_agent.core.files import write_private
from edge_agent.core.geometry import to_pixels
from edge_agent.core.masks import black_out
from edge_agent.pipeline.detect.models import ModelError, cached_sha256
from edge_agent.pipeline.evidence import draw_overlays

if TYPE_CHECKING:
    from edge_agent.app.agent import Agent

logger = logging.getLogger(__name__)

RELOAD_WAIT_S = 120.0  # loading a new model on a Pi takes a while
WATCH_EVERY_S = 0.5
FIXED_SECTIONS = ("mqtt", "outbox", "commands")
FetchModel = Callable[[str], Path]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "opencv": cv2.__version__}
    for dist in ("edge-agent", "onnxruntime", "paho-mqtt", "numpy", "cryptography"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _free_mb(path: Path) -> float | None:
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return round(shutil.disk_usage(probe).free / 1e6, 1)
    except OSError:
        return None


class Actions:
    """Runs a checked command against `agent`; one at a time (the listener's worker thread)."""

    def __init__(self, agent: Agent, fetch_model: FetchModel | None = None) -> None:
        self.agent = agent
        self.fetch_model = fetch_model
        self.started = time.monotonic()

    def __call__(self, cmd: Command) -> CommandResult:
        run = {
            "ping": self.ping,
            "config-get": self.config_get,
            "config-set": self.config_set,
            "snapshot": self.snapshot,
            "model-update": self.model_update,
        }[cmd.action]
        return run(cmd)

    def _result(
        self, cmd: Command, state: str, message: str, data: dict[str, Any] | None = None
    ) -> CommandResult:
        cfg = self.agent.cfg
        return CommandResult(
            cmd.id, cmd.action, cfg.site.id, cfg.device.id, state, redact(message), data or {}
        )

    def _arg(self, cmd: Command, name: str) -> str:
        value = cmd.args.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{cmd.action} needs args.{name} (a string)")
        return value

    # --- ping ------------------------------------------------------------------------

    def inventory(self) -> dict[str, Any]:
        agent = self.agent
        cfg = agent.cfg
        model_path = getattr(getattr(agent.detector, "model", None), "path", None)
        model: dict[str, Any] = {"name": cfg.model.path or cfg.model.name}
        if model_path is not None:
            model["file"] = str(model_path)
            model["sha256"] = cached_sha256(Path(model_path))
        config: dict[str, Any] = {"path": agent.config_path}
        if agent.config_path:
            config["sha256"] = hashlib.sha256(Path(agent.config_path).read_bytes()).hexdigest()
        return {
            "versions": _versions(),
            "hostname": socket.gethostname(),
            "config": config,
            "model": model,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "disk": {
                "outbox_free_mb": _free_mb(Path(cfg.outbox.path).parent),
                "evidence_free_mb": _free_mb(Path(cfg.evidence.dir)),
            },
            "cameras": {rt.cam.id: rt.health.state or "starting" for rt in list(agent.cameras)},
            "commands": {"confirm_s": cfg.commands.confirm_s},
        }

    def ping(self, cmd: Command) -> CommandResult:
        return self._result(cmd, "applied", "pong", self.inventory())

    def config_get(self, cmd: Command) -> CommandResult:
        if self.agent.config_path is None:
            return self._result(cmd, "refused", "this agent runs without a config file")
        raw = Path(self.agent.config_path).read_bytes()
        data = {
            "path": self.agent.config_path,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "text": redact_config_text(raw.decode("utf-8", errors="replace")),
        }
        return self._result(cmd, "applied", f"{len(raw)} bytes, passwords hidden", data)

    # --- snapshot --------------------------------------------------------------------

    def snapshot(self, cmd: Command) -> CommandResult:
        try:
            camera = self._arg(cmd, "camera")
        except ValueError as err:
            return self._result(cmd, "refused", str(err))
        runtime = next((rt for rt in list(self.agent.cameras) if rt.cam.id == camera), None)
        if runtime is None:
            known = ", ".join(rt.cam.id for rt in self.agent.cameras)
            return self._result(cmd, "refused", f"no camera {camera!r} (cameras: {known})")
        frame = runtime.source.newest()
        if frame is None:
            why = runtime.source.last_error or "no frame yet"
            return self._result(cmd, "refused", f"camera {camera} has no picture: {why}")
        # privacy masks filled black, as in every picture that leaves the box (a copy: the
        # pipeline may still read the frame), then zones, lines and masks outlined
        height, width = frame.image.shape[:2]
        image = black_out(frame.image, [to_pixels(m, width, height) for m in runtime.cam.masks])
        draw_overlays(image, runtime.cam)
        quality = self.agent.cfg.evidence.jpeg_quality
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            return self._result(cmd, "refused", f"camera {camera}: the frame cannot be encoded as JPEG")
        jpeg = buf.tobytes()
        data = {
            "camera": camera,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "content_type": "image/jpeg",
            "sha256": hashlib.sha256(jpeg).hexdigest(),
            "jpeg": base64.b64encode(jpeg).decode("ascii"),
        }
        return self._result(cmd, "applied", f"{camera}: {data['width']}x{data['height']} JPEG", data)

    # --- config-set and model-update --------------------------------------------------

    def config_set(self, cmd: Command) -> CommandResult:
        try:
            text = self._arg(cmd, "config")
        except ValueError as err:
            return self._result(cmd, "refused", str(err))
        if self.agent.config_path is None:
            return self._result(cmd, "refused", "this agent runs without a config file")
        current = Path(self.agent.config_path).read_bytes()
        base = cmd.args.get("base_sha256")
        if base is not None and base != hashlib.sha256(current).hexdigest():
            # edited from an older copy: pushing it would undo whatever changed since
            return self._result(
                cmd, "refused", "the config on the box changed since this copy was read: read it again"
            )
        try:
            text = restore_config_secrets(text, current.decode("utf-8", errors="replace"))
        except SecretsError as err:
            return self._result(cmd, "refused", str(err))
        return self.apply(cmd, text)

    def model_update(self, cmd: Command) -> CommandResult:
        try:
            name = self._arg(cmd, "name")
        except ValueError as err:
            return self._result(cmd, "refused", str(err))
        if self.fetch_model is None or self.agent.config_path is None:
            return self._result(cmd, "refused", "this agent cannot fetch models")
        try:
            path = self.fetch_model(name)  # checked against its manifest's sha256 before it is in place
        except ModelError as err:
            return self._result(cmd, "refused", f"{err}; the current model keeps running")
        text = Path(self.agent.config_path).read_text(encoding="utf-8")
        result = self.apply(cmd, _with_model(text, name))
        if result.ok:
            data = {**result.data, "model": name, "sha256": cached_sha256(path)}
            return self._result(cmd, "applied", f"model {name} running", data)
        return result

    def apply(self, cmd: Command, text: str) -> CommandResult:
        """Check, write, reload and watch `text`; keep it, or put the previous file back."""
        agent = self.agent
        if agent.config_path is None:
            return self._result(cmd, "refused", "this agent runs without a config file")
        checked = check_text(text, source=cmd.action, need_mqtt=True, camera_files=False)
        if checked.cfg is None:
            shown = "; ".join(str(p) for p in checked.problems[:10])
            return self._result(cmd, "refused", f"the config does not validate: {shown}")
        new = checked.cfg
        changed = [s for s in FIXED_SECTIONS if getattr(new, s) != getattr(agent.cfg, s)]
        # the ids name the box's topics, its command channel included
        changed += [f"{s}.id" for s in ("site", "device") if getattr(new, s).id != getattr(agent.cfg, s).id]
        if changed:
            return self._result(
                cmd, "refused",
                f"{', '.join(changed)} cannot be changed remotely (they take effect only at a restart): "
                "change them on the box",
            )  # fmt: skip
        path = Path(agent.config_path)
        old = path.read_bytes()
        mode = path.stat().st_mode & 0o777
        write_private(path.with_name(path.name + ".previous"), old, mode)
        # Until the verdict, a marker says the file is on trial: an agent killed meanwhile (power
        # cut, watchdog, a config that crashes it) starts again on the previous file.
        marker = pending_marker(path)
        write_private(marker, json.dumps({"id": cmd.id, "action": cmd.action}).encode())
        write_private(path, text.encode("utf-8"), mode)
        try:
            result = self._trial(cmd, text, path, old, mode)
        finally:
            if not agent.stopping:  # stopped mid-trial: the next start reports the roll-back
                marker.unlink(missing_ok=True)
        return result

    def _trial(self, cmd: Command, text: str, path: Path, old: bytes, mode: int) -> CommandResult:
        agent = self.agent
        before = {rt.cam.id for rt in list(agent.cameras) if rt.health.state == "online"}
        problems = agent.reload_and_wait(RELOAD_WAIT_S)
        if problems:
            write_private(path, old, mode)
            return self._result(cmd, "refused", "the reload refused it: " + "; ".join(problems[:5]))
        reason = self.watch(before, agent.cfg.commands.confirm_s)
        if reason is None:
            data = {
                "config_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "cameras": {rt.cam.id: rt.health.state for rt in list(agent.cameras)},
            }
            return self._result(cmd, "applied", f"kept after {agent.cfg.commands.confirm_s:g} s", data)
        logger.warning("command %s: %s; restoring the previous config", cmd.id, redact(reason))
        write_private(path, old, mode)
        again = agent.reload_and_wait(RELOAD_WAIT_S)
        if again:
            reason += "; reloading the previous config failed too: " + "; ".join(again[:3])
        return self._result(cmd, "rolled_back", reason)

    def watch(self, before: set[str], confirm_s: float) -> str | None:
        """Why the running config is not good after `confirm_s`, or None when it is."""
        agent = self.agent
        deadline = time.monotonic() + confirm_s
        new = {rt.cam.id for rt in list(agent.cameras)} - before
        while time.monotonic() < deadline:
            for rt in list(agent.cameras):
                if rt.faults:
                    return f"camera {rt.cam.id}: its pipeline failed within {confirm_s:g} s"
            if agent.stopping:
                return "the agent is stopping"
            time.sleep(WATCH_EVERY_S)
        cameras = {rt.cam.id: rt for rt in list(agent.cameras)}
        down = [c for c in sorted((before & cameras.keys()) | new) if cameras[c].health.state != "online"]
        if not down:
            return None
        details = []
        for c in down:
            rt = cameras[c]
            error = rt.source.last_error
            details.append(f"{c} ({rt.health.state or 'not connected'}{': ' + error if error else ''})")
        return f"not online {confirm_s:g} s after the change: {', '.join(details)}"


def command_listener(
    agent: Agent, fetch_model: FetchModel | None, interrupted: Mapping[str, str] | None
) -> CommandListener | None:
    """The agent's remote operations, or None where `commands.public_key_file` is not set."""
    cfg = agent.cfg
    if not cfg.commands.public_key_file or cfg.mqtt is None:
        return None
    listener = CommandListener(
        cfg.mqtt, topics_of(cfg), cfg.commands.public_key_file, Path(cfg.outbox.path).parent,
        Actions(agent, fetch_model),
    )  # fmt: skip
    if interrupted is not None:
        cmd_id, action, message = interrupted["id"], interrupted["action"], interrupted["message"]
        site, device = cfg.site.id, cfg.device.id
        listener.pending.append(CommandResult(cmd_id, action, site, device, "rolled_back", message))
    return listener


def pending_marker(config: Path) -> Path:
    return config.with_name(config.name + ".pending")


def recover_interrupted(config_path: str) -> dict[str, str] | None:
    """At start: a config left on trial by an agent that stopped before the verdict goes back to
    the previous file. The command's id and action with the reason, for its result; else None."""
    config = Path(config_path)
    marker, previous = pending_marker(config), config.with_name(config.name + ".previous")
    if not marker.is_file():
        return None
    try:
        trial = json.loads(marker.read_text(encoding="utf-8"))
        command = {"id": str(trial["id"]), "action": str(trial["action"])}
    except (OSError, ValueError, KeyError, TypeError):
        command = {"id": "unknown", "action": "config-set"}
    if previous.is_file():
        write_private(config, previous.read_bytes(), config.stat().st_mode & 0o777)
    marker.unlink(missing_ok=True)
    message = "the agent stopped before the confirmation ended; the previous config is restored"
    logger.warning("command %s (%s): %s", command["id"], command["action"], message)
    return {**command, "message": message}


def _with_model(text: str, name: str) -> str:
    """`text` with `model.name: name` (and no `model.path`/`sha256`), comments kept."""
    yaml = YAML()
    yaml.preserve_quotes = True
    data = yaml.load(text)
    model = data.get("model")
    if model is None:
        data["model"] = {"name": name}
    else:
        model["name"] = name
        for key in ("path", "sha256"):
            model.pop(key, None)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()
