"""The `edge-agent` command line. Exit codes: 0 ok, 1 a problem to fix, 2 usage error,
3 (`replay` only) the replay finished but frames of a damaged video could not be decoded.

User mistakes (bad config, missing file, unreachable broker) end in one clear
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from edge_agent import __version__
from edge_agent.app.config import load_config
from edge_agent.core.config import Config, ConfigError, Problem, redact
from edge_agent.core.logs import FORMATS, setup_logging
from edge_agent.pipeline.detect.models import ModelError
from edge_agent.tools.cli_support import apply_default_config, progress_bars

logger = logging.getLogger("edge_agent")

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_FRAMES_LOST = 0, 1, 2, 3


def _fail(message: str, code: int = EXIT_PROBLEM) -> int:
    print(f"edge-agent: {redact(message)}", file=sys.stderr)
    return code


def _print_problems(problems: Sequence[Problem]) -> None:
    for p in problems:
        print(redact(str(p)), file=sys.stderr)


def _load(path: str) -> Config:
    return load_config(path)


def _load_checked(path: str, need_mqtt: bool = False, camera_files: bool = True) -> Config | None:
    """The config with every check of `validate` (app/checks.py); None (problems printed) if any fails."""
    from edge_agent.app.checks import check_file

    checked = check_file(path, need_mqtt=need_mqtt, camera_files=camera_files)
    if checked.cfg is None:
        _print_problems(checked.problems)
        return None
    return checked.cfg


# --- commands ------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    if args.config_file and args.config and args.config_file != args.config:
        return _fail(
            f"two config files given ({args.config_file} and --config {args.config}): give one", EXIT_USAGE
        )
    args.config = args.config_file or args.config
    cfg = _load_checked(args.config)
    if cfg is None:
        return EXIT_PROBLEM
    rules = sum(len(c.rules) for c in cfg.cameras)
    print(f"{args.config}: OK ({len(cfg.cameras)} cameras, {rules} rules)")
    return EXIT_OK


def _parse_start(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise ValueError(
            f"--start-time: expected an ISO time like 2026-11-26T08:00:00Z, got {text!r}"
        ) from err
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def cmd_replay(args: argparse.Namespace) -> int:
    from edge_agent.app.replay import run_replay
    from edge_agent.app.wiring import delivery_of, detector_of
    from edge_agent.core.sink import EventSink
    from edge_agent.core.types import Event
    from edge_agent.delivery.jsonl import CountsJsonlSink, FanoutSink, JsonlSink, MemorySink
    from edge_agent.delivery.outbox import OutboxError
    from edge_agent.sources import SourceError
    from edge_agent.tools.event_line import event_line

    try:
        start_ts = _parse_start(args.start_time)
    except ValueError as err:
        return _fail(str(err), EXIT_USAGE)
    cfg = _load_checked(args.config, camera_files=False)  # the videos are given here
    if cfg is None:
        return EXIT_PROBLEM
    camera_id = args.camera or cfg.cameras[0].id
    try:
        cfg.camera(camera_id)
    except ConfigError as err:
        _print_problems(err.problems)
        return EXIT_PROBLEM

    sinks: list[EventSink] = []
    delivery = None
    try:
        detector = detector_of(cfg)
        if args.events:
            sinks.append(JsonlSink(args.events))
        if args.counts:
            sinks.append(CountsJsonlSink(args.counts, cfg.site.id, cfg.device.id))
        if args.publish:
            delivery = delivery_of(cfg)
            delivery.start()
            sinks.append(delivery.sink)
        sink: EventSink = FanoutSink(*sinks) if sinks else MemorySink()
        bars = progress_bars(args.quiet)

        def show(ev: Event) -> None:
            if args.quiet:
                return
            if bars is not None:
                from tqdm import tqdm

                tqdm.write(event_line(ev.to_dict()), file=sys.stdout)  # above the bar, not through it
            else:
                print(event_line(ev.to_dict()), flush=True)

        result = run_replay(
            cfg,
            camera_id,
            args.videos,
            detector,
            sink,
            evidence_dir=args.evidence,
            annotate_path=args.annotate,
            start_wall_ts=start_ts,
            on_event=show,
            motion_gate=args.motion_gate,
            progress=bars,
        )
        sink.close()
    except ConfigError as err:
        _print_problems(err.problems)
        return EXIT_PROBLEM
    except (SourceError, ModelError, OutboxError, OSError) as err:
        if delivery is not None:
            delivery.close()
        return _fail(str(err))
    print(
        f"replayed {result.videos} video(s): {result.frames_read} frames read, "
        f"{result.frames_analysed} analysed, "
        f"{result.corrupt_frames} corrupt skipped, {result.events} events",
        file=sys.stderr,
    )
    for video, first, last, fps in result.lost_spans:
        print(
            f"  warning: {video}: frames {first}-{last} ({first / fps:.1f}-{(last + 1) / fps:.1f} s) "
            "could not be decoded; events there may be missing",
            file=sys.stderr,
        )
    for label, path in (
        ("events", args.events),
        ("counts", args.counts),
        ("evidence", args.evidence),
        ("annotated video", args.annotate),
    ):
        if path:
            print(f"  {label}: {path}", file=sys.stderr)
    if delivery is not None:
        remaining = delivery.wait_drained(args.drain_timeout)
        delivery.close()
        if remaining:
            return _fail(
                f"the broker did not acknowledge {remaining} item(s) within {args.drain_timeout:g} s; "
                f"they wait in the outbox {cfg.outbox.path} and the next run delivers them"
            )
        print("  published: every event and snapshot acknowledged by the broker", file=sys.stderr)
    return EXIT_FRAMES_LOST if result.corrupt_frames else EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from edge_agent.pipeline.detect.models import manifest_dirs
    from edge_agent.tools.models import fetch_model, list_models

    if args.models_cmd in ("quantize", "export"):
        from edge_agent.tools import export, quantize

        try:
            return quantize.run(args) if args.models_cmd == "quantize" else export.run(args)
        except ImportError as err:  # onnx comes with the optional `tools` extra
            return _fail(f"the Python package {err.name} is missing: pip install 'edge-agent[tools]'")
    try:
        if args.models_cmd == "fetch":
            path = fetch_model(args.name)
            print(f"{args.name}: {path} (sha256 verified)")
        else:
            rows = list_models()
            if not rows:
                where = " or ".join(map(str, manifest_dirs()))
                return _fail(f"no model manifests in {where}: reinstall edge-agent")
            for m in rows:
                state = (
                    "installed" if m.installed and m.sha256_ok else ("BAD HASH" if m.installed else "missing")
                )
                print(f"{m.name:16} {state:10} {m.file}")
    except ModelError as err:
        return _fail(str(err))
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    from edge_agent.sources import SourceError
    from edge_agent.tools.snapshot import take_snapshot

    try:
        cfg = _load(args.config)
        cam = cfg.camera(args.camera) if args.camera else cfg.cameras[0]
        size = take_snapshot(cam, args.output)
    except ConfigError as err:
        _print_problems(err.problems)
        return EXIT_PROBLEM
    except (SourceError, OSError) as err:
        return _fail(str(err))
    print(
        f"{args.output}: {size[0]}x{size[1]} with {len(cam.zones)} zones, "
        f"{len(cam.lines)} lines, {len(cam.masks)} masks"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.app.agent import Agent
    from edge_agent.app.command_actions import recover_interrupted
    from edge_agent.contract.commands import KeyFileError
    from edge_agent.delivery.outbox import OutboxError

    # A remote config-set the last run did not see through goes back before anything reads it.
    interrupted = recover_interrupted(args.config) if args.config else None
    # A camera file that is missing is that camera's fault, not a reason to stop the others.
    cfg = _load_checked(args.config, need_mqtt=True, camera_files=False)
    if cfg is None:
        return EXIT_PROBLEM
    from edge_agent.tools.models import fetch_model

    try:
        agent = Agent(cfg, args.config, fetch_model=lambda name: fetch_model(name), interrupted=interrupted)
    except (ModelError, OutboxError, OSError, KeyFileError) as err:
        return _fail(str(err))
    agent.install_signal_handlers()
    return agent.run()


def cmd_zones(args: argparse.Namespace) -> int:
    from edge_agent.tools import zones_page

    return zones_page.run(args)


def cmd_listen(args: argparse.Namespace) -> int:
    from edge_agent.tools import listen

    return listen.run(args)


# --- parser --------------------------------------------------------------------


def _add_model_tool_parsers(msub: Any) -> None:
    from edge_agent.tools import export, quantize

    quantize.add_arguments(msub.add_parser("quantize", help="int8 model, with speed and agreement vs fp32"))
    export.add_arguments(msub.add_parser("export", help="Ultralytics weights to ONNX plus a manifest"))


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge_agent.tools.doctor import run_checks

    failed = 0
    for check in run_checks(args.config):
        print(json.dumps(check.as_dict(), ensure_ascii=False) if args.json else check.line(), flush=True)
        failed += check.status == "FAIL"
    if failed:
        print(f"{failed} check(s) failed", file=sys.stderr)
    return EXIT_PROBLEM if failed else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Eagle Eye edge agent")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="auto",
        help="text, journal (syslog priority prefixes, no timestamp) or json lines; "
        "auto: journal under systemd, else text",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cfg_help = "the config file (default: $EDGE_AGENT_CONFIG, else /etc/edge-agent/config.yaml)"

    p = sub.add_parser("validate", help="check a config file and print every problem with its path")
    p.add_argument("config_file", nargs="?", metavar="CFG", help=cfg_help)
    p.add_argument("--config", help="the same, as an option")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("doctor", help="installer check: config, model, cameras, broker, disk, clock")
    p.add_argument("--config", help=cfg_help)
    p.add_argument("--json", action="store_true", help="one JSON object per check and line")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("run", help="the daemon: every camera, live, until SIGTERM")
    p.add_argument("--config", help=cfg_help)
    p.set_defaults(func=cmd_run, log_level_default="INFO")

    p = sub.add_parser("replay", help="run recorded videos through the pipeline")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--config", help=cfg_help)
    p.add_argument("--camera", help="camera id whose zones and rules apply (default: the first)")
    p.add_argument("--events", help="write events as JSON lines to this file")
    p.add_argument(
        "--counts", help="write the count rules' aggregates (eagleeye.count/1) as JSON lines to this file"
    )
    p.add_argument("--evidence", help="write a JPEG per event into this directory")
    p.add_argument("--annotate", help="write an annotated MP4 to watch")
    p.add_argument("--publish", action="store_true", help="also send events through the outbox to MQTT")
    p.add_argument(
        "--drain-timeout", type=float, default=60.0, help="seconds to wait for the broker (--publish)"
    )
    p.add_argument(
        "--start-time",
        default="2026-01-01T12:00:00Z",
        help="wall time of the video's first frame, for timestamps and schedules (default %(default)s)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no line per event, no progress bar (shown on a terminal only)"
    )
    p.add_argument(
        "--motion-gate",
        action="store_true",
        help="skip the detector on still frames as the live agent does (default: analyse every paced frame)",
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("models", help="fetch and list detector models")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    f = msub.add_parser("fetch", help="get a model from its manifest, checking its sha256")
    f.add_argument("name")
    msub.add_parser("list", help="show the manifests and whether each model is installed")
    _add_model_tool_parsers(msub)
    p.set_defaults(func=cmd_models)

    from edge_agent.tools import listen

    p = sub.add_parser("listen", help="the reference platform subscriber: validate, dedup, print events")
    listen.add_arguments(p)
    p.set_defaults(func=cmd_listen)

    # `console` is the town's application (edge_agent/console/cli.py); `edge_agent.main` hands
    # it its arguments before this parser runs. Listed here so `--help` names it.
    sub.add_parser(
        "console", help="the town console: every box's alerts in a database, a web page and a JSON API"
    )

    from edge_agent.tools import zones_page

    p = sub.add_parser("zones", help="a local web page to draw zones, lines and masks on the camera image")
    zones_page.add_arguments(p)
    p.set_defaults(func=cmd_zones)

    p = sub.add_parser("snapshot", help="one frame with zones, lines and masks drawn")
    p.add_argument("--config", help=cfg_help)
    p.add_argument("--camera")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_snapshot)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # FFmpeg's own console chatter ("moov atom not found", NAL errors) is not for users; our
    # messages say what went wrong. Set before the first capture opens.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level or getattr(args, "log_level_default", "WARNING"), args.log_format)
    missing = apply_default_config(args)
    if missing:
        return _fail(missing)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`edge-agent doctor | head`): no traceback, and none at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
