"""Parameter coercion without pydantic for the plain option types llmops uses.

typer 0.26+ coerces every parameter value (defaults included) through a pydantic ``TypeAdapter``:
importing pydantic and building the adapters costs about 60 ms on every ``llmops`` command, more
than the rest of typer. :func:`install` gives typer's parameters a pydantic-free coercion for the
annotations llmops declares (str, bool, int and float with their bounds, Path, enums, lists of these),
using typer's own path and choice checks. Any other annotation, and any value the fast path does
not accept as it stands (``--n abc``, a number out of range), goes to typer's coercion, so results
and error messages are typer's. ``tests/test_cli_coercion.py`` compares both paths on every
parameter of every command.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")

_installed = False


def install() -> bool:
    """Route typer's parameter coercion through :func:`fast_param` first; False when this typer's
    internals are not the ones this was written for (then typer's own coercion runs unchanged)."""
    global _installed
    if _installed:
        return True
    try:
        from typer import _coercion, _param_types
        from typer.core import _TyperParameter
    except ImportError:
        return False
    needed = (
        hasattr(_TyperParameter, "get_runtime_param")
        and hasattr(_coercion, "RuntimeParam")
        and hasattr(_coercion, "build_runtime_param")
        and hasattr(_param_types, "coerce_cli_path")
        and hasattr(_param_types, "coerce_cli_choice")
    )
    if not needed:
        return False

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            self._runtime_param = fast_param(self.type_descriptor) or _coercion.build_runtime_param(
                self.type_descriptor
            )
        return self._runtime_param

    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    _installed = True
    return True


def fast_param(descriptor: Any) -> Any | None:
    """A typer ``RuntimeParam`` that needs no pydantic, or None when typer's own must be used."""
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or info.parser is not None or getattr(info, "click_type", None):
        return None
    annotation = descriptor.annotation
    many = getattr(annotation, "__origin__", None) is list
    leaf = annotation.__args__[0] if many else annotation
    if getattr(leaf, "__origin__", None) is not None or getattr(info, "clamp", False):
        return None
    if leaf is str or leaf is int or leaf is float or leaf is bool:
        kind = leaf.__name__
    elif isinstance(leaf, type) and issubclass(leaf, Path):
        kind = "path"
    elif isinstance(leaf, type) and issubclass(leaf, Enum):
        kind = "enum"
    else:
        return None

    return _fast_class()(parameter_info=info, annotation=annotation, descriptor=descriptor, kind=kind, leaf=leaf,
                         many=many)  # fmt: skip


@functools.cache
def _fast_class() -> type:
    from typer import _coercion

    @dataclass(frozen=True)
    class FastParam(_coercion.RuntimeParam):
        descriptor: Any
        kind: str
        leaf: Any
        many: bool

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            info = self.parameter_info
            try:
                if self.many:
                    items = value if isinstance(value, (list, tuple)) else [value]
                    return [_leaf(self.kind, self.leaf, info, item, param, ctx) for item in items]
                return _leaf(self.kind, self.leaf, info, value, param, ctx)
            except _Slow:
                slow = _coercion.build_runtime_param(self.descriptor)
                return slow._coerce_value(value, param=param, ctx=ctx)

    return FastParam


class _Slow(Exception):
    """The fast path does not take this value as it stands: typer's coercion decides."""


def _leaf(kind: str, leaf: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
    from typer import _param_types
    from typer._click.exceptions import BadParameter

    if kind in ("str", "bool"):
        if isinstance(value, str if kind == "str" else bool):
            return value
        raise _Slow
    if kind == "path":
        path_type = info.path_type
        if path_type is None and isinstance(leaf, type) and issubclass(leaf, Path):
            path_type = leaf
        if path_type is not None and path_type not in (str, bytes) and not isinstance(value, path_type):
            if not (isinstance(value, str) and value):
                raise _Slow
            value = path_type(value)  # what typer's pydantic step makes of a non-empty str
        try:
            return _param_types.coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)
        except BadParameter:
            raise _Slow from None  # typer words it, with the path as it was typed
    if kind == "enum":
        try:
            choices = list(leaf)
            return _param_types.coerce_cli_choice(value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx)
        except (TypeError, ValueError):
            raise _Slow from None  # typer words the choice error
    number = _number(kind, value)
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        raise _Slow  # typer words the range error
    return number


def _number(kind: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise _Slow
    if kind == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _INT.fullmatch(value):
            return int(value)
        raise _Slow
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _FLOAT.fullmatch(value):
        return float(value)
    raise _Slow
