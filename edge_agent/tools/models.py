"""`edge-agent models fetch` / `models list`: getting model files, with sha256 checks.

`fetch_model` puts the file of a manifest into the model directory: from a local
cache if it holds it (development and CI machines keep one at `../shared/models`),
else from the manifest's URL. The sha256 is checked every time a file lands, and a
file that fails the check is never left where the agent would load it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edge_agent.pipeline.detect.models import ModelError, known_models, load_manifest, sha256_of
from edge_agent.pipeline.detect.models import cache_dir as _default_cache_dir
from edge_agent.pipeline.detect.models import model_dir as _default_model_dir

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_URL_SCHEMES = ("https", "http", "file")


@dataclass(frozen=True)
class ModelStatus:
    """What `models list` shows for one manifest."""

    name: str
    file: str
    path: Path
    installed: bool
    sha256_ok: bool | None  # None when the file is not there
    size_bytes: int | None


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

    cached = cache / manifest.file if cache is not None else None
    from_cache = cached is not None and cached.is_file()
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
            if cached is not None and from_cache:
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
        looked = f", not in {cache} either" if cache is not None and not from_cache else ""
        raise ModelError(
            f"cannot fetch model {name} from {source}: {_os_reason(err)}{looked}. Without internet: "
            f"copy {manifest.file} onto this machine and set EDGE_AGENT_MODEL_CACHE to its folder "
            f"(deploy/install.sh --model FILE does that), or put it into {target_dir} by hand"
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
