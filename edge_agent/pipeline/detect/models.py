"""Model manifests and resolving the `model:` config to a file the detector loads.

A manifest (`models/<name>.yaml`) names one ONNX file, its sha256, where to
download it, its input format, decoder and labels. Getting the file is the
installer's step (`tools/models.py`, `edge-agent models fetch`); this module only
reads manifests and files that are already there.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent.core.config import ModelConfig
from edge_agent.core.files import write_private
from edge_agent.core.package_data import package_dir, source_checkout
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

SYSTEM_STATE_DIR = Path("/var/lib/edge-agent")  # made by deploy/install.sh; the unit's StateDirectory


def packaged_manifest_dir() -> Path:
    """The manifests that ship inside the package (the repository's `models/`)."""
    return package_dir("models")


def model_dir() -> Path:
    """Where model files live (`models fetch` puts them there, the detector loads them).

    `$EDGE_AGENT_MODEL_DIR`; else the repository's `models/` (git-ignored files) in a source
    checkout; else `/var/lib/edge-agent/models` on an installed box (where that state
    directory exists); else the user's cache, `${XDG_CACHE_HOME:-~/.cache}/edge-agent/models`
    (a wheel installed by someone without root).
    """
    env = os.environ.get("EDGE_AGENT_MODEL_DIR")
    if env:
        return Path(env)
    repo = source_checkout()
    if repo is not None:
        return repo / "models"
    if SYSTEM_STATE_DIR.is_dir():
        return SYSTEM_STATE_DIR / "models"
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "edge-agent" / "models"


def manifest_dir() -> Path:
    """Where new manifests are written (`models quantize`, `models export`).

    `$EDGE_AGENT_MANIFEST_DIR`, else the model directory: a made model's manifest lies
    beside its file, and the packaged manifests stay as the package shipped them.
    """
    env = os.environ.get("EDGE_AGENT_MANIFEST_DIR")
    return Path(env) if env else model_dir()


def manifest_dirs() -> list[Path]:
    """Where manifests are looked up, the first match winning.

    `$EDGE_AGENT_MANIFEST_DIR` alone when set; else the model directory (manifests made
    here, e.g. an int8 model's), then the packaged ones.
    """
    env = os.environ.get("EDGE_AGENT_MANIFEST_DIR")
    if env:
        return [Path(env)]
    out: list[Path] = []
    for folder in (model_dir(), packaged_manifest_dir()):
        if folder.resolve() not in [o.resolve() for o in out]:
            out.append(folder)
    return out


def cache_dir() -> Path | None:
    """A local copy of model files to fetch from: `$EDGE_AGENT_MODEL_CACHE`, else `../shared/models`
    beside a source checkout (development and CI machines keep the weights there); None on an
    installed box without the variable (no folder inside the package is a place to put weights)."""
    env = os.environ.get("EDGE_AGENT_MODEL_CACHE")
    if env:
        return Path(env)
    repo = source_checkout()
    return repo.parent / "shared" / "models" if repo is not None else None


# `resolve_model` takes a `model_dir` argument that shadows the function.
_default_model_dir = model_dir


# --- manifests -----------------------------------------------------------------


def _folders(directory: Path | None) -> list[Path]:
    return [directory] if directory is not None else manifest_dirs()


def known_models(directory: Path | None = None) -> list[str]:
    """Names of the manifests in `directory` (default: every folder of `manifest_dirs()`), sorted."""
    return sorted({p.stem for f in _folders(directory) if f.is_dir() for p in f.glob("*.yaml")})


def load_manifest(name: str, *, directory: Path | None = None) -> Manifest:
    """The manifest called `name`; ModelError naming the known ones if there is none."""
    folders = _folders(directory)
    legal = bool(_NAME_RE.match(name))  # never join a name like `../x` onto a folder
    found = [f / f"{name}.yaml" for f in folders if legal and (f / f"{name}.yaml").is_file()]
    if not found:
        known = ", ".join(known_models(directory)) or "none"
        where = " or ".join(str(f / f"{name}.yaml") for f in folders)
        raise ModelError(f"unknown model {name!r}: no manifest {where} (known models: {known})")
    path = found[0]
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


def _hash_cache_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256.json")


def cached_sha256(path: Path) -> str:
    """The file's sha256, remembered beside it by size and mtime, so a restart does not hash again.

    The cache is a small JSON file (`.<model>.sha256.json`); where the directory is read-only
    the hash is simply computed every time. A file changed in place changes its mtime or size.
    """
    st = path.stat()
    cache = _hash_cache_path(path)
    try:
        entry = json.loads(cache.read_text(encoding="utf-8"))
        if entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            return str(entry["sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    digest = sha256_of(path)
    try:
        entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        write_private(cache, json.dumps(entry).encode())
    except OSError:
        pass
    return digest


def verify_sha256(path: Path, expected: str, name: str) -> None:
    """ModelError in one line naming both hashes when the file is not the manifest's."""
    got = cached_sha256(path)
    if got != expected:
        raise ModelError(
            f"model file {path} has sha256 {got} but the manifest {name} says {expected}: "
            f"the file is damaged or replaced; run `edge-agent models fetch {name}`"
        )


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
    if cfg.sha256 is not None:
        # checked before onnxruntime reads a byte: flipped weights load and run, detecting nothing
        got = cached_sha256(path)
        if got != cfg.sha256.lower():
            raise ModelError(
                f"model file {path} has sha256 {got} but model.sha256 says {cfg.sha256.lower()}: "
                "the file is damaged or replaced; copy it again, or set model.sha256 to the new file's"
            )
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
    if cfg.sha256 is not None:
        raise ModelError("model.sha256 is for model.path; a manifest's model is checked by its manifest")
    manifest = load_manifest(cfg.name)
    folder = model_dir if model_dir is not None else _default_model_dir()
    path = folder / manifest.file
    if not path.is_file():
        raise ModelError(
            f"model file {path} is missing: run `edge-agent models fetch {manifest.name}` to get it"
        )
    verify_sha256(path, manifest.sha256, manifest.name)
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
