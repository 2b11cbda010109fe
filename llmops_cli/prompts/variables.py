"""Check and coerce the values a caller supplies for a prompt's declared variables.

Values from the command line (``--var k=v``) and from chain ``vars:`` templates arrive as strings,
so each declared type accepts its usual string spelling ("3" for an integer, "true" for a boolean,
JSON for a list or object); anything that cannot be read as the type is an error naming the variable.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.prompts.spec import PromptSpec, VariableSpec

_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


class CoercionError(ValueError):
    pass


def _kind(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise CoercionError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise CoercionError(f"expected an integer, got {_kind(value)} {value!r}")


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise CoercionError("a boolean is not a number")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise CoercionError(f"expected a number, got {_kind(value)} {value!r}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise CoercionError(f"expected a boolean (true/false), got {_kind(value)} {value!r}")


def _from_json(value: Any, wanted: type, word: str) -> Any:
    if isinstance(value, wanted):
        return value
    if isinstance(value, tuple) and wanted is list:
        return list(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, wanted):
            return parsed
        raise CoercionError(
            f"expected {word} (give it as JSON, e.g. {'[...]' if wanted is list else '{...}'}), got {value!r}"
        )
    raise CoercionError(f"expected {word}, got {_kind(value)}")


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value) if isinstance(value, bool) else str(value)
    raise CoercionError(f"expected a string, got {_kind(value)}")


def coerce(value: Any, type_: str) -> Any:
    """``value`` as the declared ``type_``; raises :class:`CoercionError` when it cannot be."""
    if type_ == "string":
        return _to_string(value)
    if type_ == "integer":
        return _to_int(value)
    if type_ == "number":
        return _to_number(value)
    if type_ == "boolean":
        return _to_bool(value)
    if type_ == "list":
        return _from_json(value, list, "a list")
    if type_ == "object":
        return _from_json(value, dict, "an object")
    raise CoercionError(f"unknown variable type '{type_}'")


def _declared(spec: PromptSpec) -> str:
    return (
        ", ".join(f"{v.name} ({v.type}{', required' if v.needs_value else ''})" for v in spec.variables.values())
        or "none"
    )


def prepare_variables(spec: PromptSpec, values: Mapping[str, Any], *, where: str | None = None) -> dict[str, Any]:
    """The values to render ``spec`` with: unknown names refused, required ones checked, defaults
    applied, every value coerced to its declared type. ``where`` names the source in errors
    (e.g. an examples file line). Optional variables without a default stay undefined, so templates
    can test them with ``is defined`` or ``| default(...)``.
    """
    at = f" ({where})" if where else ""
    unknown = sorted(k for k in values if k not in spec.variables)
    if unknown:
        raise UsageError(
            f"prompt '{spec.name}'{at}: unknown variable{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}; declared: {_declared(spec)}",
            hint=f"Declare it under `variables:` in {spec.file}, or stop passing it.",
        )
    out: dict[str, Any] = {}
    missing: list[str] = []
    for name, var in spec.variables.items():
        value = values.get(name)
        if value is None:
            if var.has_default and var.default is not None:
                out[name] = copy.deepcopy(var.default)
            elif var.needs_value:
                missing.append(name)
            continue
        out[name] = _coerce_one(spec, var, value, at)
    if missing:
        raise UsageError(
            f"prompt '{spec.name}'{at}: missing required variable{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}; declared: {_declared(spec)}",
            hint="Pass it (e.g. --var " + f"{missing[0]}=...) or give it a `default:` in {spec.file}.",
        )
    return out


def _coerce_one(spec: PromptSpec, var: VariableSpec, value: Any, at: str) -> Any:
    try:
        return coerce(value, var.type)
    except CoercionError as exc:
        raise UsageError(f"prompt '{spec.name}'{at}: variable '{var.name}': {exc}") from None
