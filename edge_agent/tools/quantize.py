"""`edge-agent models quantize NAME`: static int8 (QDQ) quantization and how it compares to fp32.

The calibration frames go through the detector's own `preprocess`, so the int8
ranges are measured on exactly the tensors the agent feeds the model. Steps:
raise the opset to 13 (per-channel QDQ needs `DequantizeLinear(axis)`), let
onnxruntime's pre-processing fold and fuse the graph (Conv+BN+activation; without
it the int8 model measured 2x slower than fp32 here), then `quantize_static` with
per-channel int8 weights and uint8 activations.

Percentile calibration, not MinMax: on YOLOX-Nano MinMax kept only ~52% of the
fp32 detections, because a few extreme activations stretch the ranges; the
99.999th percentile keeps 82-86% on walkway footage. Leaving the detection head's
last nodes in float (Sigmoid/Concat/Reshape/Transpose, and the last Convs) changed
agreement by less than half a point, and quantizing only the Convs (SiLU in float)
neither, while being slower, so the whole graph is quantized. The loss is in the
Convs themselves (YOLOX-Nano is mostly depthwise convolutions, which keep little
precision in int8): on the varied COCO photos int8 keeps only about half of the
fp32 detections. Check agreement on the camera's own footage before deploying it.

Weights are quantized to 7 bits (`reduce_range`): onnxruntime's uint8 x int8 kernels on
x86 CPUs without VNNI (AVX2 only) add pairs of products in 16 bits, which saturate with
full-range weights. On such a CPU (an AMD EPYC) agreement on walkway-b fell from 0.82 to
0.72 without it. Elsewhere it costs one bit of weight precision (not measured on ARM).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.config import ModelConfig
from edge_agent.core.geometry import box_iou
from edge_agent.core.types import Detections
from edge_agent.pipeline.detect.models import (
    REPO_ROOT,
    Manifest,
    ModelError,
    ResolvedModel,
    load_manifest,
    manifest_dir,
    model_dir,
    one_line,
    resolve_model,
    sha256_of,
)
from edge_agent.pipeline.detect.onnx import OnnxDetector
from edge_agent.tools.export import local_url, write_manifest

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]

QDQ_OPSET = 13
DEFAULT_FRAMES = 64
CALIBRATION_VIDEO = REPO_ROOT / "fixtures" / "walkway-a.mp4"
# walkway-b is never used for calibration: agreement is measured on frames the ranges never saw.
EVALUATION_VIDEO = REPO_ROOT / "fixtures" / "walkway-b.mp4"
SHARED_IMAGES = REPO_ROOT.parent / "shared" / "fixtures" / "images"
VIDEO_STEP = 4
MATCH_IOU = 0.5
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


@dataclass(frozen=True)
class QuantizeResult:
    """What `quantize_model` wrote."""

    name: str
    fp32_path: Path
    int8_path: Path
    manifest_path: Path
    calibration_frames: int
    seconds: float


@dataclass(frozen=True)
class Agreement:
    """fp32 vs int8 on the same frames: speed and how many fp32 detections int8 also finds."""

    frames: int
    fp32_ms: float  # median ms per frame of `detect()`
    int8_ms: float
    fp32_detections: int  # fp32 detections with score >= min_score, over all frames
    int8_detections: int
    matched: int  # fp32 detections matched one-to-one by an int8 detection of the same class
    iou_threshold: float = MATCH_IOU

    @property
    def agreement(self) -> float:
        """Share of the fp32 detections that int8 also finds (1.0 when fp32 finds nothing)."""
        return self.matched / self.fp32_detections if self.fp32_detections else 1.0

    @property
    def speedup(self) -> float:
        """fp32 ms / int8 ms: above 1 means int8 is faster."""
        return self.fp32_ms / self.int8_ms


# --- frames --------------------------------------------------------------------


def read_video(path: Path, *, step: int = 1, limit: int | None = None) -> list[Image]:
    """Every `step`-th frame of a video, at most `limit` of them."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ModelError(f"cannot open the video {path}")
    frames: list[Image] = []
    try:
        index = 0
        while limit is None or len(frames) < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(np.asarray(frame, dtype=np.uint8))
            index += 1
    finally:
        cap.release()
    return frames


def read_images(folder: Path) -> list[Image]:
    """The images in a folder, by file name."""
    frames: list[Image] = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in _IMAGE_SUFFIXES:
            image = cv2.imread(str(path))
            if image is None:
                logger.warning("cannot read the image %s; skipping it", path)
                continue
            frames.append(np.asarray(image, dtype=np.uint8))
    return frames


def _spread(frames: list[Image], count: int) -> list[Image]:
    """`count` frames spread evenly over the list (all of them if it is shorter)."""
    if len(frames) <= count:
        return frames
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in picks]


def default_calibration_frames(count: int = DEFAULT_FRAMES) -> list[Image]:
    """Every 4th frame of `fixtures/walkway-a.mp4` plus `../shared/fixtures/images/*.jpg` if present."""
    images = read_images(SHARED_IMAGES)[:count] if SHARED_IMAGES.is_dir() else []
    video = read_video(CALIBRATION_VIDEO, step=VIDEO_STEP)
    return [*_spread(video, count - len(images)), *images]


def evaluation_frames(count: int = 99) -> list[Image]:
    """Fixture frames kept out of calibration: every 4th frame of `fixtures/walkway-b.mp4`."""
    return read_video(EVALUATION_VIDEO, step=VIDEO_STEP, limit=count)


def calibration_frames(source: Sequence[Image] | str | Path | None, count: int) -> list[Image]:
    """Frames for calibration from a list of BGR frames, a video, a folder of images, or the default."""
    if source is None:
        frames = default_calibration_frames(count)
    elif isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            frames = read_images(path)
            for video in sorted(p for p in path.iterdir() if p.suffix.lower() in _VIDEO_SUFFIXES):
                frames += read_video(video, step=VIDEO_STEP)
        elif path.is_file():
            frames = read_video(path, step=VIDEO_STEP)
        else:
            raise ModelError(f"calibration source {path} does not exist")
        frames = _spread(frames, count)
    else:
        frames = _spread(list(source), count)
    if not frames:
        raise ModelError(f"no calibration frames in {source}")
    return frames


# --- quantizing ----------------------------------------------------------------


class _FrameReader:
    """onnxruntime `CalibrationDataReader`: one preprocessed frame per call, None at the end."""

    def __init__(self, detector: OnnxDetector, frames: Sequence[Image]) -> None:
        self._detector = detector
        self._frames: Iterator[Image] = iter(frames)

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        tensor, _ = self._detector.preprocess(frame)
        return {self._detector.input_name: tensor}

    # onnxruntime checks for these by isinstance against its abstract base.
    def __iter__(self) -> _FrameReader:
        return self

    def __next__(self) -> dict[str, npt.NDArray[np.float32]]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _reader(detector: OnnxDetector, frames: Sequence[Image]) -> object:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(_FrameReader, CalibrationDataReader):
        pass

    return Reader(detector, frames)


def _resolve(name_or_path: str | Path) -> tuple[ResolvedModel, Manifest | None]:
    text = str(name_or_path)
    if text.endswith(".onnx") or Path(text).expanduser().is_file():
        return resolve_model(ModelConfig(name=None, path=text)), None
    manifest = load_manifest(text)
    return resolve_model(ModelConfig(name=text)), manifest


def _quantize_file(src: Path, dst: Path, reader: object, workdir: Path) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), QDQ_OPSET)
    if opset < QDQ_OPSET:
        model = version_converter.convert_version(model, QDQ_OPSET)
    upgraded = workdir / "opset.onnx"
    onnx.save(model, str(upgraded))
    prepared = workdir / "prepared.onnx"
    # Symbolic shape inference needs sympy and gains nothing on a static-shape detector.
    quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
    # onnxruntime's calibrators print progress to stdout; keep stdout for the CLI's own output.
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        quantize_static(
            str(prepared),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            reduce_range=True,
        )
    for line in chatter.getvalue().splitlines():
        logger.debug("onnxruntime: %s", line)


def _copy_metadata(src: Path, dst: Path, labels: Sequence[str]) -> None:
    """Keep the fp32 file's metadata, and add `names` so that `model.path` finds the labels too."""
    import onnx

    original = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    original["names"] = repr(dict(enumerate(labels)))
    model = onnx.load(str(dst))
    del model.metadata_props[:]
    for key, value in original.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(dst))


def quantize_model(
    name_or_path: str | Path,
    *,
    calibration: Sequence[Image] | str | Path | None = None,
    out_path: Path | None = None,
    frames: int = DEFAULT_FRAMES,
    manifest_directory: Path | None = None,
    threads: int = 2,
) -> QuantizeResult:
    """Quantize a model (a manifest name or an ONNX path) to int8 and write its manifest.

    The model goes to `out_path` (default `<model dir>/<name>-int8.onnx`) and the
    manifest `<name>-int8.yaml` to `manifest_directory` (default the manifest
    directory), so `model: {name: <name>-int8}` loads it; `model: {path: ...}`
    works too (the labels are in the file's metadata).
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    t0 = time.monotonic()
    model, manifest = _resolve(name_or_path)
    name = f"{model.name}-int8"
    target = out_path or model_dir() / f"{name}.onnx"
    images = calibration_frames(calibration, frames)
    cfg = ModelConfig(name=None, path=str(model.path), threads=threads)
    detector = OnnxDetector(model, cfg)
    logger.info("quantizing %s with %d calibration frames", model.path, len(images))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="edge-agent-quantize-") as tmp:
            partial = Path(tmp) / target.name
            _quantize_file(model.path, partial, _reader(detector, images), Path(tmp))
            _copy_metadata(model.path, partial, model.labels)
            # Moved into place only when complete, so a half-written file is never loaded.
            shutil.move(str(partial), target)
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(f"cannot quantize {model.path}: {one_line(err)}") from err

    source = (
        f"made by `edge-agent models quantize` from {model.path.name} (sha256 {sha256_of(model.path)}): "
        f"static int8 QDQ, per-channel weights, percentile calibration on {len(images)} frames"
    )
    int8_manifest = Manifest(
        name=name,
        description=f"{manifest.description if manifest else model.name} (int8)",
        file=target.name,
        sha256=sha256_of(target),
        url=local_url(target),
        licence=manifest.licence if manifest else f"as for {model.path.name}",
        source=source,
        input_width=model.input_width,
        input_height=model.input_height,
        input_channels=model.input_channels,
        input_range=model.input_range,
        letterbox_pad=model.letterbox_pad,
        decoder=model.decoder,
        labels=model.labels,
    )
    manifest_path = write_manifest(
        int8_manifest,
        manifest_directory or manifest_dir(),
        header=f"int8 version of {model.name}, {source}.\nNot downloadable: remake it on the box.",
    )
    seconds = time.monotonic() - t0
    logger.info("wrote %s and %s in %.1f s", target, manifest_path, seconds)
    return QuantizeResult(
        name=name,
        fp32_path=model.path,
        int8_path=target,
        manifest_path=manifest_path,
        calibration_frames=len(images),
        seconds=seconds,
    )


# --- comparing -----------------------------------------------------------------


def matched_count(reference: Detections, candidate: Detections, iou_threshold: float = MATCH_IOU) -> int:
    """How many `reference` detections a `candidate` detection of the same class overlaps at IoU >= threshold.

    One-to-one, greedy in reference score order (detections come sorted by score).
    """
    if not len(reference) or not len(candidate):
        return 0
    iou = box_iou(reference.xyxy, candidate.xyxy)
    iou[reference.class_id[:, None] != candidate.class_id[None, :]] = 0.0
    taken = np.zeros(len(candidate), bool)
    matched = 0
    for row in iou:
        row = np.where(taken, 0.0, row)
        best = int(row.argmax())
        if row[best] >= iou_threshold:
            taken[best] = True
            matched += 1
    return matched


def compare_models(fp32: OnnxDetector, int8: OnnxDetector, frames: Sequence[Image]) -> Agreement:
    """Speed and detection agreement of two detectors on the same frames.

    Both run on every frame, interleaved and in alternating order, so that load
    from elsewhere on the machine hits both alike. Both use fp32's `min_score`
    and NMS settings as set in their configs.
    """
    if not frames:
        raise ValueError("compare_models needs at least one frame")
    times: dict[int, list[float]] = {0: [], 1: []}
    found = {0: 0, 1: 0}
    matched = 0
    detectors = (fp32, int8)
    for i, frame in enumerate(frames):
        results: dict[int, Detections] = {}
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            t0 = time.perf_counter()
            results[which] = detectors[which].detect(frame)
            times[which].append((time.perf_counter() - t0) * 1e3)
        found[0] += len(results[0])
        found[1] += len(results[1])
        matched += matched_count(results[0], results[1])
    return Agreement(
        frames=len(frames),
        fp32_ms=statistics.median(times[0]),
        int8_ms=statistics.median(times[1]),
        fp32_detections=found[0],
        int8_detections=found[1],
        matched=matched,
    )


def detectors_for(result: QuantizeResult, *, threads: int = 2) -> tuple[OnnxDetector, OnnxDetector]:
    """The fp32 and int8 detectors of a quantize result, loaded through the normal `model.path` route."""
    fp32_cfg = ModelConfig(name=None, path=str(result.fp32_path), threads=threads)
    int8_cfg = ModelConfig(name=None, path=str(result.int8_path), threads=threads)
    return OnnxDetector(resolve_model(fp32_cfg), fp32_cfg), OnnxDetector(resolve_model(int8_cfg), int8_cfg)


# --- CLI -----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `edge-agent models quantize`."""
    parser.add_argument("name", metavar="NAME", help="a model name (manifest) or an ONNX file")
    parser.add_argument(
        "--calibration",
        metavar="VIDEO_OR_DIR",
        help="frames to calibrate on: a video (every 4th frame) or a folder of images "
        "(default: fixtures/walkway-a.mp4 and ../shared/fixtures/images)",
    )
    parser.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help="calibration frames (default %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    """`edge-agent models quantize`: quantize, then print speed and agreement on fixture frames."""
    try:
        result = quantize_model(
            args.name, calibration=args.calibration, frames=args.frames, threads=args.threads
        )
        fp32, int8 = detectors_for(result, threads=args.threads)
        agreement = compare_models(fp32, int8, evaluation_frames())
    except (ModelError, ValueError) as err:
        print(f"edge-agent: {err}", file=sys.stderr)
        return 1
    print(f"{result.int8_path}: int8 model from {result.calibration_frames} calibration frames")
    print(f"{result.manifest_path}: manifest; use it with `model: {{name: {result.name}}}`")
    print(
        f"speed on {agreement.frames} frames of {EVALUATION_VIDEO.name}: fp32 {agreement.fp32_ms:.1f} ms, "
        f"int8 {agreement.int8_ms:.1f} ms per frame (x{agreement.speedup:.2f})"
    )
    print(
        f"agreement: int8 finds {agreement.matched} of {agreement.fp32_detections} fp32 detections "
        f"({agreement.agreement:.1%}) at IoU >= {agreement.iou_threshold}"
    )
    return 0
