"""``${VAR}`` and ``${VAR:-default}`` expansion in string values, with positions for errors.

Which variables a project can read: every environment variable, unless an allow-list is in force.
There are two, and a name must pass every one that is set:

- ``LLMOPS_ENV_ALLOW`` in the environment (comma-separated names or globs such as ``OPENAI_*``):
  how a CI job keeps its secrets out of prompts and configs whatever the repository says;
- ``env: {allow: [...]}`` in ``llmops.yaml``: the names the project declares it reads (it applies
  to llmops.yaml and to the prompt files of the project loaded last).

A name that is not allowed is treated as unset: its ``:-default`` applies, else it is reported.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
ALLOW_ENV = "LLMOPS_ENV_ALLOW"
_project_allow: dict[str, tuple[str, ...] | None] = {"patterns": None}


def set_project_allow(patterns: list[str] | tuple[str, ...] | None) -> None:
    """The ``env.allow`` list of the project being loaded (None: the project declares none)."""
    _project_allow["patterns"] = None if patterns is None else tuple(str(p) for p in patterns)


def allow_lists() -> list[tuple[str, tuple[str, ...]]]:
    """The allow-lists in force, each as (where it comes from, patterns)."""
    lists = []
    raw = os.environ.get(ALLOW_ENV)
    if raw is not None:
        lists.append((ALLOW_ENV, tuple(p.strip() for p in raw.split(",") if p.strip())))
    if _project_allow["patterns"] is not None:
        lists.append(("env.allow in llmops.yaml", _project_allow["patterns"]))
    return lists


def refused_by(name: str) -> str | None:
    """Which allow-list keeps ``name`` from being expanded, or None when it may be read."""
    for where, patterns in allow_lists():
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return where
    return None


def missing_message(name: str) -> str:
    """The problem to report for a ``${name}`` with no value and no default: refused, or not set."""
    refused = refused_by(name)
    if refused is not None:
        return (
            f"environment variable ${{{name}}} may not be read here: it is not in {refused} "
            f"(add it there, or write ${{{name}:-default}})"
        )
    return f"environment variable ${{{name}}} is not set (export it, or write ${{{name}:-default}})"


def expand(
    value: Any,
    *,
    env: Mapping[str, str] | None = None,
    on_missing: Callable[[tuple[str | int, ...], str], None],
    path: tuple[str | int, ...] = (),
) -> Any:
    """Return ``value`` with every ``${VAR}`` in its strings replaced; ``$$`` is a literal ``$``.

    Unset variables without a default are passed to ``on_missing(path, name)`` and left as written;
    so are variables an allow-list refuses (:func:`refused_by` says which), which count as unset.
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
        if name in env and refused_by(name) is None:
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
