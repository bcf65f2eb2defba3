"""Reading a config file: YAML (bounded, no duplicate keys), `${VAR}`s, the models, cross-references.

Every problem of a file is collected in one pass, in file order, each with its path and
in the user's words: the schema's problems and the cross-reference checks (zones and lines
that rules name, repeated ids, labels the model knows) run on the same data, so fixing one
never reveals another that was there all along. Only a YAML syntax error stops early.

Messages never echo a secret (a key named like a password, or a URL's password) and cut
any value they quote to `MAX_SHOWN` characters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from edge_agent.core.config import Config, ConfigError, Problem, RuleConfigBase, closest, format_loc
from edge_agent.core.urls import redact
from edge_agent.core.yaml_load import Loaded, YamlError, load_yaml

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_SHOWN = 80
MAX_MESSAGE = 400
SECRET_KEYS = ("password", "secret", "token", "key")  # `tls.key` is a path, but hiding it costs nothing

ConfigT = TypeVar("ConfigT", bound=BaseModel)  # the agent's Config, or another tool's (the console)


@dataclass
class Parsed:
    """What one read of a config gives: the config (None if the schema refused it) and every problem."""

    cfg: Any
    data: Any
    loaded: Loaded
    problems: list[Problem] = field(default_factory=list)

    def add(self, loc: Sequence[Any], message: str) -> None:
        if len(message) > MAX_MESSAGE:  # a validator that quoted a whole value: one screen line or so
            message = message[: MAX_MESSAGE - 1] + "…"
        path = format_loc(loc)
        self.problems.append(
            Problem(
                shown(path) if len(path) > MAX_SHOWN * 2 else path, message, self.loaded.line_of(tuple(loc))
            )
        )

    def sorted_problems(self) -> list[Problem]:
        """Problems in file order, each once; ones without a line (the whole file) first."""
        seen: set[tuple[str, str]] = set()
        out = []
        for p in sorted(self.problems, key=lambda p: p.line):
            if (p.path, p.message) not in seen:
                seen.add((p.path, p.message))
                out.append(p)
        return out


def shown(value: Any) -> str:
    """A value as a message may quote it: passwords hidden, cut to MAX_SHOWN characters."""
    text = redact(str(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _is_secret(loc: Sequence[Any]) -> bool:
    return any(isinstance(p, str) and any(k in p.lower() for k in SECRET_KEYS) for p in loc)


def _expand_env(data: Any, path: tuple[Any, ...], env: Mapping[str, str], parsed: Parsed) -> Any:
    if isinstance(data, dict):
        return {k: _expand_env(v, (*path, k), env, parsed) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand_env(v, (*path, i), env, parsed) for i, v in enumerate(data)]
    if isinstance(data, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                parsed.add(path, f"environment variable {name} is not set")
                return ""
            return env[name]

        return _VAR_RE.sub(sub, data)
    return data


def _allowed_keys(
    loc: list[Any], root: type[BaseModel], rule_models: Mapping[str, type[BaseModel]]
) -> list[str]:
    """The keys the model at `loc` (a pydantic error path) accepts, by their YAML names."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if part in rule_models:
            model = rule_models[part]
            continue
        fld = (
            model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        )
        if fld is None:
            continue  # a key of a mapping, such as a zone's name
        model = _inner_model(fld.annotation)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside `X | None`, `list[X]` or `dict[str, X]`, else the annotation."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


# pydantic's words for a type -> the user's words (what the YAML should have held)
_TYPE_WORDS = {
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
    "list_type": "expected a list ([a, b] or lines starting with '-')",
    "tuple_type": "expected a list",
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number (not .inf or .nan)",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}
_TAG_PART = re.compile(r"^(list|dict|tuple|set|function-\w+|tagged-union|union|nullable|json-or-python)\[")


def _message(e: Mapping[str, Any], loc: Sequence[Any]) -> str:
    kind = e["type"]
    if kind in _TYPE_WORDS:
        msg = _TYPE_WORDS[kind]
        if kind == "string_type" and isinstance(e.get("input"), (int, float, bool)):
            msg += ": put the value in quotes to have it read as text"
    elif kind in ("too_short", "too_long"):
        ctx = e.get("ctx") or {}
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        side = "least" if kind == "too_short" else "most"
        msg = f"expected at {side} {bound} item(s), got {ctx.get('actual_length')}"
    else:
        msg = str(e["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
        msg = msg.replace("String should", "must").replace(" after validation", "")
    inp = e.get("input")
    if kind != "missing" and not isinstance(inp, (dict, list)) and not _is_secret(loc):
        text = shown(inp)
        if text not in msg and "got " not in msg:
            msg += f" (got {text!r})"
    return msg


def _pydantic_problems(
    err: ValidationError, root: type[BaseModel], rule_models: Mapping[str, type[BaseModel]], parsed: Parsed
) -> None:
    kinds = tuple(rule_models)
    for e in err.errors(include_url=False):
        raw = list(e["loc"])
        # A discriminated union puts the tag (the rule kind) into the path; users never wrote it.
        loc = [p for i, p in enumerate(raw) if not (i > 0 and isinstance(raw[i - 1], int) and p in kinds)]
        loc = [p for p in loc if not (isinstance(p, str) and _TAG_PART.match(p))]
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(raw[:-1], root, rule_models)
            msg = f"unknown key {shown(loc[-1])!r}" + (
                f" (expected one of: {', '.join(allowed)})" if allowed else ""
            )
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "union_tag_invalid":
            msg = f"unknown rule kind {shown(e['input'].get('kind'))!r}; expected one of: {', '.join(kinds)}"
        elif e["type"] == "union_tag_not_found":
            msg = f"a rule needs a 'kind', one of: {', '.join(kinds)}"
        else:
            msg = _message(e, loc)
        parsed.add(loc, msg)


def parse_text(
    model: type[ConfigT],
    rule_models: Mapping[str, type[RuleConfigBase]],
    text: str,
    env: Mapping[str, str] | None = None,
    source: str = "config",
) -> Parsed:
    """Read config text into `model`, collecting the schema's problems (never raises ConfigError
    except for YAML that cannot be read at all)."""
    try:
        loaded = load_yaml(text)
    except YamlError as err:
        raise ConfigError([Problem(source, str(err))]) from err
    parsed = Parsed(None, loaded.data, loaded)
    for loc, first, line in loaded.duplicates:
        parsed.add(loc, f"key {shown(loc[-1])!r} appears twice (lines {first} and {line}); keep one")
    if not isinstance(loaded.data, dict):
        required = ", ".join(name for name, f in model.model_fields.items() if f.is_required())
        raise ConfigError([Problem(source, f"expected a mapping with {required}")])
    parsed.data = _expand_env(loaded.data, (), os.environ if env is None else env, parsed)
    try:
        parsed.cfg = model.model_validate(parsed.data)
    except ValidationError as err:
        _pydantic_problems(err, model, rule_models, parsed)
    except RecursionError:
        parsed.add((), "nested too deeply")
    return parsed


def parse_config_with(
    model: type[ConfigT],
    rule_models: Mapping[str, type[RuleConfigBase]],
    text: str,
    env: Mapping[str, str] | None = None,
    source: str = "config",
) -> ConfigT:
    """Parse YAML text into `model`; raises ConfigError with every schema problem."""
    parsed = parse_text(model, rule_models, text, env, source)
    if parsed.problems or parsed.cfg is None:
        raise ConfigError(parsed.sorted_problems())
    cfg: ConfigT = parsed.cfg
    return cfg


def read_config_text(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError([Problem(str(p), f"the config file is not UTF-8 text (byte {err.start})")]) from err
    except OSError as err:
        raise ConfigError([Problem(str(p), f"cannot read the config file: {err.strerror}")]) from err


# --- cross-references ------------------------------------------------------------


def _items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


def check_refs(data: Any, known_labels: Iterable[str] | None, parsed: Parsed) -> None:
    """Rules name existing zones/lines and labels the model knows; ids are not repeated.

    Works on the raw data, so it runs even where the schema refused something else.
    """
    known = set(known_labels) if known_labels is not None else None
    cameras = data.get("cameras") if isinstance(data, dict) else None
    seen_cams: set[str] = set()
    for ci, cam in _items(cameras):
        if not isinstance(cam, dict):
            continue
        cid = cam.get("id")
        if isinstance(cid, str):
            if cid in seen_cams:
                parsed.add(("cameras", ci, "id"), f"camera id {shown(cid)!r} is used twice")
            seen_cams.add(cid)
        zones: dict[Any, Any] = cam["zones"] if isinstance(cam.get("zones"), dict) else {}
        lines: dict[Any, Any] = cam["lines"] if isinstance(cam.get("lines"), dict) else {}
        zone_names = ", ".join(str(z) for z in zones) or "none defined"
        line_names = ", ".join(str(x) for x in lines) or "none defined"
        seen_rules: set[str] = set()
        for ri, rule in _items(cam.get("rules")):
            if not isinstance(rule, dict):
                continue
            base = ("cameras", ci, "rules", ri)
            rid = rule.get("id")
            if isinstance(rid, str):
                if rid in seen_rules:
                    parsed.add((*base, "id"), f"rule id {shown(rid)!r} is used twice in this camera")
                seen_rules.add(rid)
            zone = rule.get("zone")
            if isinstance(zone, str) and zone not in zones:
                parsed.add((*base, "zone"), f"no zone named {shown(zone)!r} (zones: {shown(zone_names)})")
            line = rule.get("line")
            if isinstance(line, str) and line not in lines:
                parsed.add((*base, "line"), f"no line named {shown(line)!r} (lines: {shown(line_names)})")
            if known is None:
                continue
            for key in ("labels", "items", "owner_labels"):
                for li, label in _items(rule.get(key)):
                    if isinstance(label, str) and label not in known:
                        hint = closest(label, known) if len(label) <= 64 else None
                        parsed.add(
                            (*base, key, li),
                            f"the model does not know the label {shown(label)!r}"
                            + (f" (did you mean {hint!r}?)" if hint else ""),
                        )


def check_config(cfg: Config, known_labels: Sequence[str] | None) -> list[Problem]:
    """The cross-reference problems of a parsed config (see `check_refs`)."""
    parsed = Parsed(cfg, cfg.model_dump(by_alias=True), Loaded(None))
    check_refs(parsed.data, known_labels, parsed)
    return parsed.problems
