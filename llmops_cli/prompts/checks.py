"""What rendering a prompt will refuse, found without rendering: a chain step's variables against the
prompt's declared ones, and few-shot rows against them.

Used by ``llmops validate`` (through :mod:`llmops_cli.chains.analysis`) and by ``prompt diff``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmops_cli.config.problems import Finding, did_you_mean
from llmops_cli.prompts.deps import StepUse

if TYPE_CHECKING:
    from llmops_cli.prompts.spec import PromptSpec


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _declared(spec: PromptSpec) -> str:
    return ", ".join(spec.variables) or "none"


def step_variable_findings(use: StepUse, spec: PromptSpec, step: Mapping[str, Any] | None = None) -> list[Finding]:
    """What ``prepare_variables`` will refuse when ``use`` renders ``spec``: required variables the step
    does not pass, variables it passes that the prompt does not declare, literal values of the wrong type."""
    from llmops_cli.prompts.variables import CoercionError, coerce

    out: list[Finding] = []
    where = f"{use.label}: prompt '{spec.name}' ({spec.file})"
    for name, var in spec.variables.items():
        if not var.needs_value or use.passes(name):
            continue
        if use.explicit_vars is None and not use.inputs_declared:
            continue  # the chain declares no inputs: the value may be passed at run time
        how = (
            f"its vars: set {', '.join(use.explicit_vars) or 'nothing'}"
            if use.explicit_vars is not None
            else f"no chain input or earlier step output is named '{name}' "
            f"(available: {', '.join(use.available) or 'none'})"
        )
        path = (*use.path, "vars") if use.explicit_vars is not None else (*use.path, "prompt")
        message = f"{where} requires variable '{name}', which the step does not pass; {how}"
        out.append(Finding(path, message, "missing", name, at_key=use.explicit_vars is not None))
    raw_vars = step.get("vars") if step is not None else None
    for name in use.explicit_vars or ():
        if name not in spec.variables:
            out.append(
                Finding(
                    (*use.path, "vars", name),
                    f"{where} has no variable '{name}'{did_you_mean(name, spec.variables)}; "
                    f"declared: {_declared(spec)}",
                    "unknown",
                    name,
                )
            )
            continue
        value = raw_vars.get(name) if isinstance(raw_vars, dict) else None
        if value is None or (isinstance(value, str) and _is_template(value)):
            continue  # rendered at run time: its type is known only then
        try:
            coerce(str(value), spec.variables[name].type)
        except CoercionError as exc:
            out.append(Finding((*use.path, "vars", name), f"{where}: variable '{name}': {exc}", "type", name))
    return out


def example_findings(spec: PromptSpec, text: str) -> list[tuple[int, str]]:
    """(line, message) for few-shot rows that rendering will refuse: a variable the prompt does not
    declare, or a required one missing. ``text`` is the examples file (JSONL)."""
    import json

    out: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue  # reported when the rows are parsed
        if not isinstance(row, dict):
            continue
        unknown = sorted(k for k in row if k != "output" and k not in spec.variables)
        missing = [n for n, v in spec.variables.items() if v.needs_value and n not in row]
        if unknown:
            out.append(
                (lineno, f"few-shot row of prompt '{spec.name}' sets {', '.join(repr(u) for u in unknown)}, "
                 f"which the prompt does not declare; declared: {_declared(spec)}")
            )  # fmt: skip
        if missing:
            out.append(
                (lineno, f"few-shot row of prompt '{spec.name}' lacks required variable "
                 f"{', '.join(repr(m) for m in missing)}")
            )  # fmt: skip
    return out
