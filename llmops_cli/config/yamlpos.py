"""Safe YAML loading that remembers where every key and value came from.

PyYAML's composer gives nodes with line/column marks; we build plain Python objects from them
ourselves, so that (a) every path maps to a position for error messages, (b) alias expansion is
counted and a YAML bomb stops after ``max_nodes`` instead of eating memory, and (c) duplicate keys
are reported instead of silently overwritten.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml.constructor

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``2e-4`` as a float (YAML 1.2 does; PyYAML's 1.1 rules do not)."""


_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLoader(yaml.CSafeLoader):
        """The same, parsed by libyaml (about 10x faster); errors are re-parsed by _Loader for its messages."""

    _FastLoader = _CLoader

for _cls in (_Loader, _FastLoader):
    if _cls is not None:
        _cls.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
            list("-+0123456789"),
        )


@dataclass
class Located:
    """A loaded document plus ``path -> (line, column)`` (1-based) for keys and values."""

    data: Any
    file: str
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    value_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[Path_, tuple[int, int]]] = field(default_factory=list)

    def mark(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Best position for ``path``: the key (or value), else the nearest located ancestor."""
        table = (self.key_marks, self.value_marks) if key else (self.value_marks, self.key_marks)
        probe = tuple(path)
        while True:
            for t in table:
                if probe in t:
                    return t[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]


class YamlLoadError(Exception):
    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, located: Located, max_nodes: int) -> None:
        self.loc = located
        self.budget = max_nodes
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise YamlLoadError(
                "document expands to too many nodes (an alias/anchor bomb?); refusing to load it",
                *_pos(node),
            )
        self.loc.value_marks.setdefault(path, _pos(node))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise YamlLoadError(f"unsupported YAML tag {node.tag}", *_pos(node))
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # resolves YAML merge keys (<<)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    raise YamlLoadError("mapping keys must be plain scalars", *_pos(key_node))
                key = str(key) if not isinstance(key, str) else key
                child = (*path, key)
                if key in result:
                    self.loc.duplicates.append((child, _pos(key_node)))
                self.loc.key_marks[child] = _pos(key_node)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def _compose(text: str) -> yaml.Node | None:
    """Compose with libyaml when available; on any error, again in pure Python for the same message."""
    if _FastLoader is not None:
        try:
            return yaml.compose(text, Loader=_FastLoader)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=_Loader)


def load_located(path: Path, *, max_bytes: int = MAX_FILE_BYTES, max_nodes: int = MAX_NODES) -> Located:
    """Load one YAML document from ``path`` safely. Raises :class:`YamlLoadError` with a position."""
    size = os.stat(path).st_size
    if size > max_bytes:
        raise YamlLoadError(f"file is {size} bytes; the limit is {max_bytes} bytes")
    text = path.read_text(encoding="utf-8")
    return loads_located(text, file=str(path), max_nodes=max_nodes)


def loads_located(text: str, *, file: str = "<string>", max_nodes: int = MAX_NODES) -> Located:
    located = Located(data=None, file=file)
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlLoadError(f"YAML syntax error: {exc.problem or exc}", line, col) from None
    except yaml.YAMLError as exc:  # e.g. more than one document
        raise YamlLoadError(f"YAML error: {exc}") from None
    if node is None:
        located.data = {}
        return located
    try:
        located.data = _Builder(located, max_nodes).build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlLoadError(f"YAML error: {exc.problem}", line, col) from None
    except RecursionError:
        raise YamlLoadError("document is nested too deeply (recursive alias?)") from None
    return located
