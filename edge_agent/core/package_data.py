"""Files the package carries: the model manifests and the MQTT contract (schemas, AsyncAPI).

They live once, in the repository's `models/` and `mqtt/`, where people edit them.
`edge_agent/data/models` and `edge_agent/data/mqtt` are symlinks to those folders, and
setuptools copies the files they point at into the wheel (the globs in pyproject.toml), so
a source checkout and an installed wheel find them the same way, through
`importlib.resources`, without an environment variable.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE = "edge_agent"


def package_dir(name: str) -> Path:
    """The folder `edge_agent/data/<name>` (`models`, `mqtt`) as a real path.

    In a source checkout the symlink is resolved, so messages name the file people edit
    (`models/yolox-nano.yaml`), not its alias inside the package.
    """
    root = files(PACKAGE) / "data" / name
    if not isinstance(root, Path):
        # A zip import: the loaders here read files by path. pip always unpacks wheels.
        raise RuntimeError(f"edge-agent must be installed unpacked to read its {name} files (got {root!r})")
    return root.resolve()


def source_checkout() -> Path | None:
    """The repository root when running from a checkout of it (not from an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "models").is_dir() and (root / "mqtt").is_dir():
        return root
    return None
