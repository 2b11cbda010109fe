"""``${VAR}`` and ``${VAR:-default}`` expansion in string values, with positions for errors."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def expand(
    value: Any,
    *,
    env: Mapping[str, str] | None = None,
    on_missing: Callable[[tuple[str | int, ...], str], None],
    path: tuple[str | int, ...] = (),
) -> Any:
    """Return ``value`` with every ``${VAR}`` in its strings replaced; ``$$`` is a literal ``$``.

    Unset variables without a default are passed to ``on_missing(path, name)`` and left as written.
    """
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: expand(v, env=env, on_missing=on_missing, path=(*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env=env, on_missing=on_missing, path=(*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        on_missing(path, name)
        return match.group(0)

    result = _VAR.sub(substitute, value)
    whole = _VAR.fullmatch(value)
    if whole and whole.group(0) != "$$" and result != value:
        return _scalar(result)  # `port: ${PORT}` gives 8000, not "8000"
    return result


def _scalar(text: str) -> Any:
    """Read an expanded value as YAML would a plain scalar: numbers and booleans keep their type."""
    import yaml

    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return parsed if isinstance(parsed, (int, float, bool)) else text
