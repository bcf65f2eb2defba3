"""Model manifests, fetching with sha256 checks, and resolving `model:` config to a file.

A manifest (`models/<name>.yaml`) names one ONNX file, its sha256, where to
download it, its input format, decoder and labels. `fetch_model` puts the file
into the model directory: from a local cache if it holds it (development and CI
machines keep one at `../shared/models`), else from the manifest's URL. The
sha256 is checked every time a file lands, and a file that fails the check is
never left where the agent would load it.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent.core.config import ModelConfig
from edge_agent.pipeline.detect.decoders import DecoderName, class_count, infer_decoder

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]

COCO80_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# The input size a custom model falls back to when its ONNX input has dynamic dimensions.
DEFAULT_INPUT_SIZE = 640
_CHUNK = 1 << 20
_URL_SCHEMES = ("https", "http", "file")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ModelError(Exception):
    """A model problem the user must fix; the message is one line that says how."""


Channels = Literal["bgr", "rgb"]
InputRange = Literal["0-255", "0-1"]


class Manifest(BaseModel):
    """One `models/<name>.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="The name used in config (`model.name`) and on the CLI")
    description: str = ""
    file: str = Field(min_length=1, description="File name in the model directory")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: str = Field(description="Where `models fetch` downloads the file from")
    licence: str
    source: str = Field(description="Provenance: who trained it, where this export comes from")
    input_width: int = Field(gt=0)
    input_height: int = Field(gt=0)
    input_channels: Channels = "bgr"
    input_range: InputRange = "0-255"
    letterbox_pad: int = Field(114, ge=0, le=255)
    decoder: DecoderName
    labels: tuple[str, ...] = Field(min_length=1)


@dataclass(frozen=True)
class ModelStatus:
    """What `models list` shows for one manifest."""

    name: str
    file: str
    path: Path
    installed: bool
    sha256_ok: bool | None  # None when the file is not there
    size_bytes: int | None


@dataclass(frozen=True)
class ResolvedModel:
    """Everything the detector needs to know about one model file.

    For a manifest it comes from the manifest; for `model.path` it is read from
    the ONNX file itself (input shape, output shape, metadata).
    """

    name: str
    path: Path
    labels: tuple[str, ...]
    decoder: DecoderName
    input_width: int
    input_height: int
    input_channels: Channels = "bgr"
    input_range: InputRange = "0-255"
    letterbox_pad: int = 114

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_width, self.input_height


# --- directories ---------------------------------------------------------------


def manifest_dir() -> Path:
    """`$EDGE_AGENT_MANIFEST_DIR`, else the repository's `models/`."""
    env = os.environ.get("EDGE_AGENT_MANIFEST_DIR")
    return Path(env) if env else REPO_ROOT / "models"


def model_dir() -> Path:
    """Where model files live: `$EDGE_AGENT_MODEL_DIR`, else the repository's `models/` (git-ignored)."""
    env = os.environ.get("EDGE_AGENT_MODEL_DIR")
    return Path(env) if env else REPO_ROOT / "models"


def cache_dir() -> Path:
    """A local copy of model files to fetch from: `$EDGE_AGENT_MODEL_CACHE`, else `../shared/models`."""
    env = os.environ.get("EDGE_AGENT_MODEL_CACHE")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "models"


# `fetch_model` and friends take `model_dir` / `cache_dir` arguments that shadow these.
_default_model_dir = model_dir
_default_cache_dir = cache_dir


# --- manifests -----------------------------------------------------------------


def known_models(directory: Path | None = None) -> list[str]:
    """Names of the manifests in `directory` (default `manifest_dir()`), sorted."""
    folder = directory or manifest_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_manifest(name: str, *, directory: Path | None = None) -> Manifest:
    """The manifest called `name`; ModelError naming the known ones if there is none."""
    folder = directory or manifest_dir()
    path = folder / f"{name}.yaml"
    if not _NAME_RE.match(name) or not path.is_file():
        known = ", ".join(known_models(folder)) or "none"
        raise ModelError(f"unknown model {name!r}: no manifest {path} (known models: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        manifest = Manifest.model_validate(data)
    except (OSError, yaml.YAMLError) as err:
        raise ModelError(f"cannot read the manifest {path}: {err}") from err
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise ModelError(f"bad manifest {path}: {where}: {first['msg']}") from err
    if manifest.name != name:
        raise ModelError(f"bad manifest {path}: its name is {manifest.name!r}, the file says {name!r}")
    return manifest


# --- fetching ------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, fh: IO[bytes], timeout_s: float) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _URL_SCHEMES:
        raise ModelError(f"cannot download {url}: only {', '.join(_URL_SCHEMES)} URLs are supported")
    # The scheme is checked above, so urlopen cannot be pointed at anything unexpected.
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310
        shutil.copyfileobj(resp, fh, _CHUNK)


def _os_reason(err: OSError) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return err.strerror or str(err)


def fetch_model(
    name: str,
    *,
    model_dir: Path | None = None,
    cache_dir: Path | None = None,
    timeout_s: float = 60,
) -> Path:
    """Make sure the model file of manifest `name` is in the model directory; return its path.

    A file already there with the right sha256 is kept. Otherwise the file is
    copied from the cache directory if it holds it, else downloaded from the
    manifest's URL, into a temporary file beside the target that is renamed into
    place only once its sha256 matches.
    """
    manifest = load_manifest(name)
    target_dir = model_dir if model_dir is not None else _default_model_dir()
    cache = cache_dir if cache_dir is not None else _default_cache_dir()
    target = target_dir / manifest.file
    if target.is_file():
        got = sha256_of(target)
        if got == manifest.sha256:
            logger.info("model %s is already in %s", name, target)
            return target
        logger.warning("model file %s has sha256 %s, expected %s: replacing it", target, got, manifest.sha256)
        target.unlink()

    cached = cache / manifest.file
    from_cache = cached.is_file()
    source = str(cached) if from_cache else manifest.url
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelError(f"cannot create the model directory {target_dir}: {err.strerror}") from err
    # A temporary file beside the target: the rename into place is atomic, and the
    # agent never sees a half-written or unchecked file.
    tmp = tempfile.NamedTemporaryFile(
        prefix=f".{manifest.file}.", suffix=".part", dir=target_dir, delete=False
    )
    tmp_path = Path(tmp.name)
    try:
        with tmp:
            if from_cache:
                logger.info("copying model %s from %s", name, cached)
                with cached.open("rb") as src:
                    shutil.copyfileobj(src, tmp, _CHUNK)
            else:
                logger.info("downloading model %s from %s", name, manifest.url)
                _download(manifest.url, tmp, timeout_s)
        got = sha256_of(tmp_path)
        if got != manifest.sha256:
            raise ModelError(
                f"sha256 mismatch for {manifest.file} from {source}: expected {manifest.sha256}, got {got}"
            )
        # weights are not secret: readable by the service user whoever fetched them
        tmp_path.chmod(0o644)
        tmp_path.replace(target)
    except OSError as err:  # urllib's URLError and HTTPError are OSErrors too
        raise ModelError(
            f"cannot fetch model {name} from {source}: {_os_reason(err)} "
            f"(or put {manifest.file} into {cache} or {target_dir} by hand)"
        ) from err
    finally:
        tmp_path.unlink(missing_ok=True)
    logger.info("model %s is in %s (sha256 ok)", name, target)
    return target


def list_models(*, model_dir: Path | None = None) -> list[ModelStatus]:
    """Every manifest with whether its file is in the model directory and passes its sha256."""
    folder = model_dir if model_dir is not None else _default_model_dir()
    out = []
    for name in known_models():
        manifest = load_manifest(name)
        path = folder / manifest.file
        installed = path.is_file()
        out.append(
            ModelStatus(
                name=name,
                file=manifest.file,
                path=path,
                installed=installed,
                sha256_ok=(sha256_of(path) == manifest.sha256) if installed else None,
                size_bytes=path.stat().st_size if installed else None,
            )
        )
    return out


# --- resolving config ----------------------------------------------------------


def parse_names(text: str) -> tuple[str, ...] | None:
    """Class names from ONNX metadata `names`, or None if they cannot be read.

    Ultralytics writes a Python dict literal (`{0: 'person', 1: 'bicycle'}`);
    a list literal is taken too. Ids must run 0..n-1.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, Mapping):
        try:
            items = sorted((int(k), str(v)) for k, v in value.items())
        except (TypeError, ValueError):
            return None
        if [k for k, _ in items] != list(range(len(items))):
            return None
        return tuple(v for _, v in items)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return None


def default_labels(num_classes: int) -> tuple[str, ...]:
    """COCO-80 when a model has 80 classes, else `class0`, `class1`, …"""
    if num_classes == len(COCO80_LABELS):
        return COCO80_LABELS
    return tuple(f"class{i}" for i in range(num_classes))


def _static_dims(shape: Sequence[object]) -> list[int] | None:
    dims = [d for d in shape if isinstance(d, int) and d > 0]
    return dims if len(dims) == len(shape) else None


def _inspect_onnx(path: Path) -> tuple[dict[str, str], tuple[int, int], list[int]]:
    """Metadata, input size (w, h) and concrete output shape of an ONNX file."""
    # Imported here: reading a manifest (`validate`, `models list`) should not pay for onnxruntime.
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Only shapes and metadata are read here; optimising the graph would double the load time.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise ModelError(f"cannot load the ONNX model {path}: {one_line(err)}") from err
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    inp = sess.get_inputs()[0]
    in_dims = list(inp.shape)
    if len(in_dims) != 4:
        raise ModelError(f"the ONNX model {path} has input shape {in_dims}; expected [1, 3, height, width]")
    h, w = in_dims[2], in_dims[3]
    size = (w, h) if isinstance(w, int) and isinstance(h, int) else (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    out_dims = _static_dims(sess.get_outputs()[0].shape)
    if out_dims is None:
        # Dynamic output dimensions: one run at the input size tells the real shape.
        dummy = np.zeros((1, 3, size[1], size[0]), np.float32)
        try:
            out_dims = list(sess.run(None, {inp.name: dummy})[0].shape)
        except Exception as err:
            raise ModelError(f"cannot run the ONNX model {path}: {one_line(err)}") from err
    return meta, size, out_dims


def one_line(err: BaseException) -> str:
    """The first line of an exception's text, for one-line user messages."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _resolve_path(cfg: ModelConfig, path: Path) -> ResolvedModel:
    if not path.is_file():
        raise ModelError(f"model file {path} (model.path) does not exist")
    meta, (w, h), out_shape = _inspect_onnx(path)
    try:
        decoder = cfg.decoder or infer_decoder(out_shape, w, h)
        num_classes = class_count(decoder, out_shape, w, h)
    except ValueError as err:
        raise ModelError(f"cannot use the ONNX model {path}: {err}") from err
    labels = parse_names(meta["names"]) if "names" in meta else None
    if "names" in meta and labels is None:
        logger.warning("cannot read the class names in the metadata of %s; using defaults", path)
    if labels is not None and len(labels) != num_classes:
        raise ModelError(
            f"the ONNX model {path} has {num_classes} classes but its metadata names {len(labels)}"
        )
    # Ultralytics (YOLOv5/v8/11) exports take RGB scaled to 0..1; YOLOX takes BGR 0..255.
    rgb01 = decoder != "yolox"
    return ResolvedModel(
        name=path.stem,
        path=path,
        labels=labels if labels is not None else default_labels(num_classes),
        decoder=decoder,
        input_width=w,
        input_height=h,
        input_channels="rgb" if rgb01 else "bgr",
        input_range="0-1" if rgb01 else "0-255",
    )


def resolve_model(cfg: ModelConfig, *, model_dir: Path | None = None) -> ResolvedModel:
    """The file, labels, decoder and input format for the `model:` section of a config.

    `model.path` wins over `model.name`: a custom file is inspected (decoder from
    its output shape, labels from its metadata `names`).
    """
    if cfg.path:
        return _resolve_path(cfg, Path(cfg.path).expanduser())
    if not cfg.name:
        raise ModelError("model: set either name (a manifest in models/) or path (an ONNX file)")
    manifest = load_manifest(cfg.name)
    folder = model_dir if model_dir is not None else _default_model_dir()
    path = folder / manifest.file
    if not path.is_file():
        raise ModelError(
            f"model file {path} is missing: run `edge-agent models fetch {manifest.name}` to get it"
        )
    return ResolvedModel(
        name=manifest.name,
        path=path,
        labels=manifest.labels,
        decoder=cfg.decoder or manifest.decoder,
        input_width=manifest.input_width,
        input_height=manifest.input_height,
        input_channels=manifest.input_channels,
        input_range=manifest.input_range,
        letterbox_pad=manifest.letterbox_pad,
    )


def model_labels(cfg: ModelConfig) -> tuple[str, ...]:
    """The labels a config's model knows, without loading it when a manifest says them."""
    if cfg.path is None and cfg.name is not None:
        return load_manifest(cfg.name).labels
    return resolve_model(cfg).labels
