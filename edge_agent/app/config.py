"""The config file as the agent reads it: core's models, closed over the registered rule kinds.

`core.config` defines every section but leaves `CameraConfig.rules` open (`RuleConfigBase`),
because the rule kinds live with their logic under `pipeline/rules/` and core may not import
them. Here the kinds of `pipeline.rules.registry.KINDS` become one pydantic discriminated
union on `kind`; `parse_config` and `load_config` are the loaders every command uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import Field, create_model

from edge_agent.core import config as core
from edge_agent.core.config import ConfigError, RuleConfigBase
from edge_agent.core.config_load import parse_config_with, read_config_text
from edge_agent.pipeline.rules import registry

__all__ = ["CameraConfig", "Config", "ConfigError", "load_config", "parse_config", "rule_models"]

_closed: dict[tuple[type[RuleConfigBase], ...], tuple[type[core.CameraConfig], type[core.Config]]] = {}


def rule_models() -> dict[str, type[RuleConfigBase]]:
    """kind -> config model of every registered rule kind, in registry order."""
    return {k.name: k.config for k in registry.KINDS}


def closed_models() -> tuple[type[core.CameraConfig], type[core.Config]]:
    """`CameraConfig` and `Config` whose rules are the union of the registered kinds' configs."""
    configs = tuple(k.config for k in registry.KINDS)
    if configs not in _closed:
        union: Any = Annotated[Union[configs], Field(discriminator="kind")]  # noqa: UP007
        camera = create_model(
            "CameraConfig", __base__=core.CameraConfig, rules=(list[union], Field(default_factory=list))
        )
        config = create_model("Config", __base__=core.Config, cameras=(list[camera], Field(min_length=1)))
        _closed[configs] = (camera, config)
    return _closed[configs]


CameraConfig, Config = closed_models()


def parse_config(text: str, env: Mapping[str, str] | None = None, source: str = "config") -> core.Config:
    """Parse YAML text into a Config; raises ConfigError with every problem, each with its path."""
    return parse_config_with(closed_models()[1], rule_models(), text, env, source)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> core.Config:
    return parse_config(read_config_text(path), env, source=str(path))
