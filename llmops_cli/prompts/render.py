"""Render a prompt into chat messages, and chat messages into the text a model sees.

Templates run in Jinja's sandbox (a prompt file is data, and may come from a pull request) with
``StrictUndefined``, so a misspelt variable is an error instead of silently rendering as nothing.
Compiled templates are cached by source, so a chain or eval rendering the same prompt thousands of
times parses it once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from llmops_cli.errors import UsageError
from llmops_cli.generation import Message
from llmops_cli.prompts.spec import PromptSpec
from llmops_cli.prompts.variables import prepare_variables

_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")


def environment() -> Any:
    """The one sandboxed, strict, bounded Jinja environment prompts render in (see ``prompts.sandbox``)."""
    from llmops_cli.prompts.sandbox import environment as bounded

    return bounded()


@lru_cache(maxsize=1024)
def _compile(source: str) -> Any:
    return environment().from_string(source)


@lru_cache(maxsize=1024)
def _variables_of(source: str) -> frozenset[str]:
    from jinja2 import meta

    env = environment()
    return frozenset(meta.find_undeclared_variables(env.parse(source)) - set(env.globals))


def template_variables(source: str) -> set[str]:
    """Names a template reads from its caller (not Jinja globals, loop or ``set`` names)."""
    return set(_variables_of(source))


def _render_source(spec: PromptSpec, key: str, source: str, values: Mapping[str, Any], where: str | None) -> str:
    from jinja2 import TemplateError, UndefinedError
    from jinja2.sandbox import SecurityError

    from llmops_cli.prompts.sandbox import RenderLimitExceeded, render_bounded

    at = f" ({where})" if where else ""
    try:
        return render_bounded(_compile(source), values)
    except RenderLimitExceeded as exc:
        raise UsageError(
            f"prompt '{spec.name}' {key}{at}: rendering stopped: {exc.what} (limit: {exc.limit})",
            hint=f"Fix the template in {spec.file}; a prompt renders in milliseconds and to far less text.",
        ) from None
    except UndefinedError as exc:
        match = _UNDEFINED.match(str(exc))
        declared = ", ".join(spec.variables) or "none"
        what = f"variable '{match.group(1)}' is undefined" if match else str(exc)
        raise UsageError(
            f"prompt '{spec.name}' {key}{at}: {what}; declared variables: {declared}",
            hint=f"Declare it under `variables:` in {spec.file} (with a default if it is optional), "
            "or guard it in the template with `{% if name is defined %}`.",
        ) from None
    except SecurityError as exc:
        raise UsageError(f"prompt '{spec.name}' {key}: unsafe template operation refused: {exc}") from None
    except TemplateError as exc:
        raise UsageError(f"prompt '{spec.name}' {key}{at}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        # Runtime errors inside the template ({{ 1/0 }}, a huge range()) are the prompt's fault, not ours.
        raise UsageError(f"prompt '{spec.name}' {key}{at}: rendering failed: {type(exc).__name__}: {exc}") from None


def _user_template(spec: PromptSpec) -> tuple[str, str] | None:
    """The (key, source) a few-shot example's user turn renders: the template, else the last user message."""
    if spec.template is not None:
        return "template", spec.template
    for i in range(len(spec.messages or ()) - 1, -1, -1):
        assert spec.messages is not None
        if spec.messages[i]["role"] == "user":
            return f"messages[{i}]", spec.messages[i]["content"]
    return None


def _example_turns(spec: PromptSpec) -> list[Message]:
    target = _user_template(spec)
    if target is None:
        return []
    key, source = target
    turns: list[Message] = []
    for i, row in enumerate(spec.examples, 1):
        where = f"{spec.examples_file} row {i}"
        values = prepare_variables(spec, {k: v for k, v in row.items() if k != "output"}, where=where)
        turns.append({"role": "user", "content": _render_source(spec, key, source, values, where)})
        turns.append({"role": "assistant", "content": str(row["output"])})
    return turns


def render(spec: PromptSpec, variables: Mapping[str, Any], *, include_examples: bool = True) -> list[Message]:
    """The chat messages for ``spec`` with ``variables``: system, few-shot turns, then the user turn.

    For a ``messages:`` prompt the rendered list follows the system message; few-shot turns go
    before its first non-system message. Raises :class:`UsageError` for unknown, missing, mistyped
    or undefined variables, naming the prompt and its declared variables.
    """
    values = prepare_variables(spec, variables)
    messages: list[Message] = []
    if spec.system is not None:
        messages.append({"role": "system", "content": _render_source(spec, "system", spec.system, values, None)})
    examples = _example_turns(spec) if include_examples and spec.examples_file else []
    if spec.template is not None:
        messages.extend(examples)
        messages.append({"role": "user", "content": _render_source(spec, "template", spec.template, values, None)})
        return messages
    rendered = [
        {"role": m["role"], "content": _render_source(spec, f"messages[{i}]", m["content"], values, None)}
        for i, m in enumerate(spec.messages or ())
    ]
    lead = next((i for i, m in enumerate(rendered) if m["role"] != "system"), len(rendered))
    return messages + rendered[:lead] + examples + rendered[lead:]


_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


def to_prompt_text(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """The exact text a completion model sees for ``messages``.

    With a tokenizer that has a chat template, that template decides (with the generation prompt
    appended); otherwise a plain ``System:/User:/Assistant:`` transcript ending in ``Assistant:``.
    """
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return str(text)
    parts = [f"{_ROLE_NAMES.get(m['role'], m['role'].title())}: {m['content']}" for m in messages]
    parts.append("Assistant:")
    return "\n\n".join(parts)
