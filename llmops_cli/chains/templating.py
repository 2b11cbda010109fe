"""Sandboxed, strict Jinja2 for chain step fields (queries, vars, conditions, transforms)."""

from __future__ import annotations

from functools import cache
from typing import Any

from llmops_cli.errors import UsageError


@cache
def _env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


def render(template: str, context: dict[str, Any], *, where: str) -> str:
    from jinja2 import TemplateError

    try:
        return str(_env().from_string(template).render(**context))
    except TemplateError as exc:
        names = ", ".join(sorted(context)) or "none"
        raise UsageError(f"{where}: {exc} (values available: {names})") from None


def evaluate(expression: str, context: dict[str, Any], *, where: str) -> Any:
    """A ``when:`` condition: a Jinja expression, optionally wrapped in ``{{ }}``."""
    from jinja2 import TemplateError

    text = expression.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2]
    try:
        return _env().compile_expression(text, undefined_to_none=False)(**context)
    except TemplateError as exc:
        raise UsageError(f"{where}: cannot evaluate condition {expression!r}: {exc}") from None
