"""``llmops prompt lint``: render every prompt with its declared examples and types, no model needed.

A prompt can parse and still fail the first time a chain renders it: an optional variable used
without a guard, a filter that needs a list but gets a string, a few-shot row with a value of the
wrong type. Lint renders each prompt the ways callers will:

- with only its required variables (optional ones left undefined, as a chain that omits them does);
- with every declared variable set;
- with each few-shot example row as the variables (the row's values, coerced to the declared types),
  which also renders every few-shot turn.

Values come from, in order: the variable's ``default``, the first example row that has it, and a
sample of its declared type. Rendering goes through :func:`llmops_cli.prompts.render`, the code
chains and evals use, so a prompt that lints clean renders the same way at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import LlmopsError

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.prompts.spec import PromptSpec

# One plausible value per declared type, used when neither a default nor an example supplies one.
TYPE_SAMPLES: dict[str, Any] = {
    "string": "sample text",
    "integer": 3,
    "number": 0.5,
    "boolean": True,
    "list": ["first item", "second item"],
    "object": {"key": "value"},
}


@dataclass
class PromptLint:
    """What linting one prompt found: ``errors`` fail the lint, ``warnings`` do not."""

    name: str
    file: str | None
    renders: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.name,
            "file": self.file,
            "ok": self.ok,
            "renders": self.renders,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def _sample_value(spec: PromptSpec, name: str, examples: list[dict[str, Any]]) -> Any:
    var = spec.variables[name]
    if var.has_default and var.default is not None:
        return var.default
    for row in examples:
        if row.get(name) is not None:
            return row[name]
    return TYPE_SAMPLES.get(var.type, "sample text")


def _message(error: LlmopsError) -> str:
    return error.message


def lint_spec(spec: PromptSpec) -> PromptLint:
    """Render ``spec`` with required-only, full and per-example variables; collect every failure."""
    from llmops_cli.prompts.render import render

    result = PromptLint(name=spec.name, file=spec.file)
    try:
        examples = spec.examples
    except LlmopsError as exc:
        result.errors.append(_message(exc))
        result.errors += getattr(exc, "problems", [])
        examples = []
    if spec.variables_declared:
        for name in sorted(set(spec.variables) - spec.referenced_variables()):
            result.warnings.append(f"variable '{name}' is declared but no template uses it")
    cases: list[tuple[str, dict[str, Any], bool]] = []
    required = {n: _sample_value(spec, n, examples) for n, v in spec.variables.items() if v.needs_value}
    everything = {n: _sample_value(spec, n, examples) for n in spec.variables}
    cases.append(("required variables only", required, False))
    if everything != required:
        cases.append(("every declared variable", everything, False))
    for i, row in enumerate(examples, 1):
        values = {k: v for k, v in row.items() if k != "output"}
        cases.append((f"{spec.examples_file} row {i} as the variables", values, True))
    seen: set[str] = set()
    for label, values, with_examples in cases:
        try:
            render(spec, values, include_examples=with_examples)
            result.renders += 1
        except LlmopsError as exc:
            text = _message(exc)
            if text not in seen:  # a broken few-shot row fails every render that includes it: say it once
                seen.add(text)
                result.errors.append(f"{label}: {text}")
    return result


def lint_prompts(config: ProjectConfig, names: list[str] | None = None) -> list[PromptLint]:
    """Lint ``names`` (default: every declared prompt); a prompt that does not load is an error, not a stop."""
    from llmops_cli.prompts.spec import load_prompt

    results: list[PromptLint] = []
    for name in names or list(config.prompts):
        if names and name not in config.prompts:
            load_prompt(config, name)  # raises the unknown-prompt error with its suggestion
        try:
            spec = load_prompt(config, name)
        except LlmopsError as exc:
            ref = config.prompts.get(name)
            failed = PromptLint(name=name, file=ref.file if ref else None)
            failed.errors.append(_message(exc))
            failed.errors += getattr(exc, "problems", [])
            results.append(failed)
            continue
        results.append(lint_spec(spec))
    return results
