"""The config's YAML loader: safe, bounded, strict about duplicate keys, and it remembers lines.

`yaml.safe_load` builds whatever the text describes, so a few hundred bytes of nested
aliases (a "billion laughs") expand into gigabytes, and a repeated key (two `site:`)
silently keeps the last. Here the node graph is composed first and its expanded size
counted before anything is built; a repeated key is a problem with both lines; and the
line of every key is kept so that `validate` can list problems in file order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_TEXT_BYTES = 1 << 20  # a config is a few KB; a megabyte is a mistake or an attack
MAX_NODES = 100_000  # nodes after alias expansion; a real config has a few thousand
MAX_DEPTH = 64

Loc = tuple[Any, ...]


class YamlError(Exception):
    """The text is not a config YAML can read; the message says where, in one line."""


@dataclass
class Loaded:
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)  # path of a key or item -> its 1-based line
    duplicates: list[tuple[Loc, int, int]] = field(default_factory=list)  # (path, first line, line)

    def line_of(self, loc: Loc) -> int:
        """The line of `loc`, or of its nearest ancestor that has one (0 when none)."""
        for n in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:n]))
            if line is not None:
                return line
        return 0


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown place"


def _measure(node: yaml.Node) -> None:
    """Refuse graphs that expand past MAX_NODES, nest past MAX_DEPTH or refer to themselves."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(n: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise YamlError(f"nested more than {MAX_DEPTH} levels deep at {_where(n.start_mark)}")
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlError(f"an alias refers to itself at {_where(n.start_mark)}")
        active.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            for child in n.value:
                total += size(child, depth + 1)
                if total > MAX_NODES:
                    break
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k, depth + 1) + size(v, depth + 1)
                if total > MAX_NODES:
                    break
        active.discard(key)
        if total > MAX_NODES:
            raise YamlError(
                f"the document expands to more than {MAX_NODES} values (aliases inside aliases?) "
                f"at {_where(n.start_mark)}"
            )
        sizes[key] = total
        return total

    size(node, 0)


def _walk(node: yaml.Node, loc: Loc, out: Loaded) -> None:
    """Record the line of every key and item under `node`, and every repeated key."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                continue
            key: Any = k.value
            if k.tag == "tag:yaml.org,2002:merge":
                _walk(v, loc, out)
                continue
            line = k.start_mark.line + 1
            if key in seen:
                out.duplicates.append(((*loc, key), seen[key], line))
            seen[key] = line
            out.lines.setdefault((*loc, key), line)
            _walk(v, (*loc, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            out.lines.setdefault((*loc, i), child.start_mark.line + 1)
            _walk(child, (*loc, i), out)


def load_yaml(text: str) -> Loaded:
    """Parse config text; raises YamlError for syntax errors and oversized or hostile documents."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise YamlError(f"the file is larger than {MAX_TEXT_BYTES // 1024} KB; a config is a few KB")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Loaded(None)
        _measure(node)
        out = Loaded(None)
        _walk(node, (), out)
        out.data = loader.construct_document(node)
        return out
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise YamlError(f"malformed YAML at {_where(mark)}: {problem}") from err
    except RecursionError as err:
        raise YamlError(f"nested too deeply (more than {MAX_DEPTH} levels)") from err
    finally:
        loader.dispose()
