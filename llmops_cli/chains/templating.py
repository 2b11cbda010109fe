"""Sandboxed, strict, bounded Jinja for chain step fields (queries, vars, conditions, transforms).

The environment and its time and size bounds are the prompts' (:mod:`llmops_cli.prompts.sandbox`).
"""

from __future__ import annotations

from typing import Any

from llmops_cli.errors import UsageError


def _env() -> Any:
    from llmops_cli.prompts.sandbox import environment

    return environment()


def _limit_error(where: str, exc: Any) -> UsageError:
    return UsageError(
        f"{where}: rendering stopped: {exc.what} (limit: {exc.limit})",
        hint="Fix the expression in the chain's step; it should render in milliseconds.",
    )


def render(template: str, context: dict[str, Any], *, where: str) -> str:
    from jinja2 import TemplateError

    from llmops_cli.prompts.sandbox import RenderLimitExceeded, render_bounded

    try:
        return render_bounded(_env().from_string(template), context)
    except RenderLimitExceeded as exc:
        raise _limit_error(where, exc) from None
    except TemplateError as exc:
        names = ", ".join(sorted(context)) or "none"
        raise UsageError(f"{where}: {exc} (values available: {names})") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise UsageError(f"{where}: rendering failed: {type(exc).__name__}: {exc}") from None


def evaluate(expression: str, context: dict[str, Any], *, where: str) -> Any:
    """A ``when:`` condition: a Jinja expression, optionally wrapped in ``{{ }}``."""
    from jinja2 import TemplateError

    from llmops_cli.prompts.sandbox import RenderLimitExceeded, run_bounded

    text = expression.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2]
    try:
        compiled = _env().compile_expression(text, undefined_to_none=False)
        return run_bounded(lambda: compiled(**context))
    except RenderLimitExceeded as exc:
        raise _limit_error(f"{where}: condition {expression!r}", exc) from None
    except TemplateError as exc:
        raise UsageError(f"{where}: cannot evaluate condition {expression!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise UsageError(f"{where}: cannot evaluate condition {expression!r}: {type(exc).__name__}: {exc}") from None
