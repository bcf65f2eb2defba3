"""`edge-agent models export WEIGHTS.pt`: an Ultralytics model to an ONNX file plus a manifest.

Ultralytics (the optional `export` extra) does the export itself: ONNX opset 12,
a fixed input size, no NMS in the graph, so the output is the raw `[1, 4 + nc, N]`
that the YOLOv8 decoder reads (YOLOv8 and YOLO11 share it). Everything after the
export — checking the file, its sha256 and the manifest the agent loads — needs
no Ultralytics and is in `write_export_manifest`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from edge_agent.pipeline.detect.decoders import class_count
from edge_agent.pipeline.detect.models import (
    Manifest,
    ModelError,
    _inspect_onnx,
    manifest_dir,
    model_dir,
    one_line,
    sha256_of,
)

logger = logging.getLogger(__name__)

EXPORT_OPSET = 12
INSTALL_HINT = "pip install 'edge-agent[export]'"
ULTRALYTICS_LICENCE = "AGPL-3.0 (Ultralytics) unless the weights come with another licence"


def labels_from_names(names: Mapping[int, str] | Sequence[str]) -> tuple[str, ...]:
    """Labels in class-id order from an Ultralytics `names` dict (`{0: 'person', …}`) or a list."""
    if isinstance(names, Mapping):
        ids = sorted(int(k) for k in names)
        if ids != list(range(len(ids))):
            raise ModelError(f"the model's class ids must run 0..{len(ids) - 1}; they are {ids}")
        return tuple(str(names[k]) for k in sorted(names, key=int))
    return tuple(str(n) for n in names)


def local_url(path: Path) -> str:
    """A `file://` URL for a model made on this machine.

    `Manifest.url` is required; a local file's own URL keeps the manifest valid
    and lets `models fetch` accept the file that is already in place.
    """
    return path.resolve().as_uri()


def write_manifest(manifest: Manifest, directory: Path, *, header: str = "") -> Path:
    """Write `<directory>/<manifest.name>.yaml` (validated, key order as in `Manifest`)."""
    data: dict[str, Any] = manifest.model_dump(mode="json")
    data["labels"] = list(manifest.labels)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    path = directory / f"{manifest.name}.yaml"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(comment + text, encoding="utf-8")
    except OSError as err:
        raise ModelError(f"cannot write the manifest {path}: {err.strerror or err}") from err
    logger.info("wrote manifest %s", path)
    return path


def write_export_manifest(
    onnx_path: Path,
    names: Mapping[int, str] | Sequence[str],
    *,
    name: str,
    source: str,
    directory: Path | None = None,
    licence: str = ULTRALYTICS_LICENCE,
) -> Path:
    """The manifest for an exported YOLOv8-layout ONNX file; returns its path.

    The file is checked first: a static `[1, 3, H, W]` input and a `[1, 4 + nc, N]`
    output whose `nc` matches the number of names.
    """
    labels = labels_from_names(names)
    _, (width, height), out_shape = _inspect_onnx(onnx_path)
    try:
        num_classes = class_count("yolov8", out_shape, width, height)
    except ValueError as err:
        raise ModelError(f"the exported model {onnx_path} cannot be used: {err}") from err
    if num_classes != len(labels):
        raise ModelError(
            f"the exported model {onnx_path} has {num_classes} classes but the weights name {len(labels)}"
        )
    manifest = Manifest(
        name=name,
        description=f"{name}: Ultralytics export, {num_classes} classes at {width}x{height}",
        file=onnx_path.name,
        sha256=sha256_of(onnx_path),
        url=local_url(onnx_path),
        licence=licence,
        source=source,
        input_width=width,
        input_height=height,
        # Ultralytics models take RGB scaled to 0..1, letterboxed with grey 114.
        input_channels="rgb",
        input_range="0-1",
        letterbox_pad=114,
        decoder="yolov8",
        labels=labels,
    )
    header = (
        f"Made by `edge-agent models export` from {source}.\n"
        f"Load it with `model: {{name: {name}}}`; the file lives in the model directory."
    )
    return write_manifest(manifest, directory or manifest_dir(), header=header)


def export_model(
    weights: Path,
    *,
    imgsz: int = 640,
    name: str | None = None,
    out_dir: Path | None = None,
    manifest_directory: Path | None = None,
) -> tuple[Path, Path]:
    """Export Ultralytics `weights` to `<model dir>/<name>.onnx` and write its manifest.

    Returns (ONNX path, manifest path). ModelError with a one-line fix when
    Ultralytics is not installed or the export fails.
    """
    try:
        from ultralytics import YOLO
    except ImportError as err:
        raise ModelError(f"exporting needs Ultralytics, which is not installed: {INSTALL_HINT}") from err
    if not weights.is_file():
        raise ModelError(f"weights file {weights} does not exist")
    model_name = name or weights.stem
    target_dir = out_dir or model_dir()
    try:
        model = YOLO(str(weights))
        # No NMS in the graph: the agent's decoder and NMS run after the model, as for every model.
        exported = Path(
            model.export(format="onnx", imgsz=imgsz, opset=EXPORT_OPSET, dynamic=False, nms=False)
        )
        names = model.names
    except Exception as err:
        raise ModelError(f"cannot export {weights}: {one_line(err)}") from err
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{model_name}.onnx"
    if exported.resolve() != target.resolve():
        shutil.move(str(exported), target)
    manifest = write_export_manifest(
        target,
        names,
        name=model_name,
        source=f"edge-agent models export of {weights.name} (imgsz {imgsz}, opset {EXPORT_OPSET}, no NMS)",
        directory=manifest_directory,
    )
    return target, manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `edge-agent models export`."""
    parser.add_argument("weights", metavar="WEIGHTS.pt", help="Ultralytics weights (YOLOv8 / YOLO11)")
    parser.add_argument("--imgsz", type=int, default=640, help="input size in pixels (default %(default)s)")
    parser.add_argument("--name", help="model name for `model.name` (default: the weights' file stem)")


def run(args: argparse.Namespace) -> int:
    """`edge-agent models export`; prints where the model and manifest went."""
    try:
        onnx_path, manifest_path = export_model(Path(args.weights), imgsz=args.imgsz, name=args.name)
    except ModelError as err:
        print(f"edge-agent: {err}", file=sys.stderr)
        return 1
    print(f"{onnx_path}: exported (sha256 in {manifest_path})")
    print(f"use it with `model: {{name: {manifest_path.stem}}}`")
    return 0
