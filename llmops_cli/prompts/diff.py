"""``prompt diff``: what changed in each prompt between two revisions, and what that breaks.

The core of the command a reviewer runs before merging. It reads both sides with
:mod:`llmops_cli.prompts.revisions`, compares every prompt (texts, variables, params, few-shot
examples, file renames, additions and deletions), finds its dependents in the *new* config, and
flags breaking changes with a reason each. Pure Python plus git and Jinja's parser: it never imports
torch, transformers or chromadb, so it is cheap to run on every pull request.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.errors import ConfigError, UsageError
from llmops_cli.generation import GenerationParams
from llmops_cli.prompts.deps import Dependents, StepUse, chain_steps, find_dependents
from llmops_cli.prompts.revisions import PromptEntry, Snapshot, snapshots
from llmops_cli.prompts.spec import PromptSpec, VariableSpec, parse_examples

PARAM_ORDER = tuple(GenerationParams.__dataclass_fields__)
VARIABLE_FIELDS = ("type", "required", "default", "description")


@dataclass(frozen=True)
class Breaking:
    """One breaking change. ``kind``: variable_added, variable_required, variable_removed,
    variable_type, undeclared_variable, prompt_deleted, prompt_invalid."""

    kind: str
    reason: str


@dataclass
class VariableChange:
    name: str
    changes: dict[str, tuple[Any, Any]]  # field -> (old, new); a missing default is shown as None


@dataclass
class ExamplesDiff:
    file_from: str | None
    file_to: str | None
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    modified: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    unchanged: int = 0
    error: str | None = None


@dataclass
class PromptChange:
    name: str
    status: str  # added | deleted | modified | renamed
    file_from: str | None
    file_to: str | None
    dependents: Dependents
    text: dict[str, str] = field(default_factory=dict)  # system / template / messages -> unified diff
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # description, model
    variables_added: list[VariableSpec] = field(default_factory=list)
    variables_removed: list[VariableSpec] = field(default_factory=list)
    variables_changed: list[VariableChange] = field(default_factory=list)
    renamed_variables: dict[str, str] = field(default_factory=dict)  # old -> new (a guess)
    params: list[tuple[str, Any, Any]] = field(default_factory=list)  # (param, old, new); None = unset
    examples: ExamplesDiff | None = None
    breaking: list[Breaking] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class DiffReport:
    old: Snapshot
    new: Snapshot
    changes: list[PromptChange]
    unchanged: list[str]

    @property
    def breaking(self) -> list[tuple[str, Breaking]]:
        return [(c.name, b) for c in self.changes for b in c.breaking]


# -- texts ---------------------------------------------------------------------------------------


def unified(old: str | None, new: str | None, from_label: str, to_label: str) -> str:
    """A unified diff of two texts ('' when equal)."""
    if (old or "") == (new or ""):
        return ""
    lines = difflib.unified_diff(
        (old or "").splitlines(), (new or "").splitlines(), from_label, to_label, lineterm="", n=3
    )
    return "\n".join(lines)


def _messages_text(spec: PromptSpec | None) -> str | None:
    if spec is None or spec.messages is None:
        return None
    return "\n".join(f"[{m['role']}]\n{m['content']}" for m in spec.messages)


def _text_diffs(
    name: str, a: PromptSpec | None, b: PromptSpec | None, fa: str | None, fb: str | None
) -> dict[str, str]:
    out: dict[str, str] = {}
    texts = {
        "system": (a.system if a else None, b.system if b else None),
        "template": (a.template if a else None, b.template if b else None),
        "messages": (_messages_text(a), _messages_text(b)),
    }
    for key, (old, new) in texts.items():
        diff = unified(old, new, f"a/{fa or name} ({key})", f"b/{fb or name} ({key})")
        if diff:
            out[key] = diff
    return out


# -- variables, params, examples -----------------------------------------------------------------


def _var_value(var: VariableSpec, key: str) -> Any:
    return var.default if key == "default" and var.has_default else (None if key == "default" else getattr(var, key))


def _variable_changes(change: PromptChange, a: PromptSpec, b: PromptSpec) -> None:
    for name, var in b.variables.items():
        if name not in a.variables:
            change.variables_added.append(var)
    for name, var in a.variables.items():
        if name not in b.variables:
            change.variables_removed.append(var)
            continue
        new = b.variables[name]
        diffs = {k: (_var_value(var, k), _var_value(new, k)) for k in VARIABLE_FIELDS}
        diffs = {
            k: v for k, v in diffs.items() if v[0] != v[1] or (k == "default" and var.has_default != new.has_default)
        }
        if diffs:
            change.variables_changed.append(VariableChange(name, diffs))
    removed, added = change.variables_removed, change.variables_added
    if len(removed) == 1 and len(added) == 1 and removed[0].type == added[0].type:
        change.renamed_variables[removed[0].name] = added[0].name


def _params(declared: dict[str, Any]) -> dict[str, Any]:
    params = dict(declared)
    if isinstance(params.get("stop"), str):
        params["stop"] = [params["stop"]]
    return params


def _param_changes(a: PromptSpec, b: PromptSpec) -> list[tuple[str, Any, Any]]:
    old, new = _params(a.declared_params), _params(b.declared_params)
    keys = sorted(set(old) | set(new), key=lambda k: (PARAM_ORDER.index(k) if k in PARAM_ORDER else 99, k))
    return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def _rows(spec: PromptSpec | None) -> tuple[str | None, list[dict[str, Any]], str | None]:
    """(file, rows, error) of a spec's few-shot examples."""
    if spec is None or not spec.examples_file:
        return None, [], None
    text = spec.read_text(spec.examples_file) if spec.read_text else None
    if text is None:
        return spec.examples_file, [], f"{spec.examples_file} does not exist"
    try:
        return spec.examples_file, parse_examples(text, file=spec.examples_file), None
    except ConfigError as exc:
        return spec.examples_file, [], "; ".join([exc.message, *exc.problems])


def _canon(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def _take(pool: list[dict[str, Any]], key: Any, keyfn: Any) -> dict[str, Any] | None:
    for i, row in enumerate(pool):
        if keyfn(row) == key:
            return pool.pop(i)
    return None


def examples_diff(a: PromptSpec | None, b: PromptSpec | None) -> ExamplesDiff | None:
    """Rows added, removed and modified, matched by content (so a renamed file compares fine).

    Identical rows match first; then a row whose inputs are unchanged (only ``output`` differs), or
    whose ``output`` is unchanged (only inputs differ), counts as one modified row.
    """
    fa, old, err_a = _rows(a)
    fb, new, err_b = _rows(b)
    if fa is None and fb is None:
        return None
    result = ExamplesDiff(fa, fb, error=err_b)
    if err_a and not err_b:
        result.error = f"at the old revision: {err_a}"
    pool = list(old)
    for row in new:
        if _take(pool, _canon(row), _canon) is not None:
            result.unchanged += 1
        else:
            result.added.append(row)
    result.removed = pool
    for keyfn in (
        lambda r: _canon({k: v for k, v in r.items() if k != "output"}),
        lambda r: _canon({"o": r["output"]}),
    ):
        still_added = []
        for row in result.added:
            match = _take(result.removed, keyfn(row), keyfn)
            if match is None:
                still_added.append(row)
            else:
                result.modified.append((match, row))
        result.added = still_added
    if fa == fb and not (result.added or result.removed or result.modified or result.error):
        return None
    return result


# -- breaking changes ----------------------------------------------------------------------------


def _labels(steps: Sequence[StepUse]) -> str:
    return ", ".join(s.label for s in steps)


def _needs_value_breaking(name: str, deps: Dependents, reason: str) -> str | None:
    """Why a variable callers must now supply breaks someone; None when every user already passes it."""
    missing = [s for s in deps.steps if not s.passes(name)]
    covered = deps.steps and not missing and not deps.direct_evals and not deps.direct_packages
    if covered:
        return None
    parts = [reason]
    if missing:
        parts.append(f"{_labels(missing)} do{'es' if len(missing) == 1 else ''} not pass it")
    if deps.direct_evals:
        parts.append(f"eval(s) {', '.join(deps.direct_evals)} call the prompt directly")
    if not deps.steps and not deps.direct_evals:
        parts.append("every existing caller must now pass it")
    return "; ".join(parts)


def _flag_variables(change: PromptChange, a: PromptSpec, b: PromptSpec) -> None:
    deps = change.dependents
    renamed_to = change.renamed_variables
    for var in change.variables_added:
        if var.needs_value:
            why = _needs_value_breaking(var.name, deps, f"new required variable '{var.name}' has no default")
            if why:
                change.breaking.append(Breaking("variable_added", why))
    for var in change.variables_removed:
        passers = [s for s in deps.steps if s.passes(var.name)]
        if not (passers or deps.direct_evals or deps.direct_packages):
            continue
        renamed = f" (renamed to '{renamed_to[var.name]}'?)" if var.name in renamed_to else ""
        who = [f"{_labels(passers)} still pass{'es' if len(passers) == 1 else ''} it"] if passers else []
        who += [f"eval '{e}' targets the prompt and supplies variables by name" for e in deps.direct_evals]
        who += [f"package '{p}' ships the prompt to API callers" for p in deps.direct_packages]
        change.breaking.append(
            Breaking("variable_removed", f"variable '{var.name}' was removed{renamed}; " + "; ".join(who))
        )
    for vc in change.variables_changed:
        if "type" in vc.changes:
            old, new = vc.changes["type"]
            change.breaking.append(
                Breaking(
                    "variable_type", f"variable '{vc.name}' changed type {old} -> {new}; callers pass {old} values"
                )
            )
        if b.variables[vc.name].needs_value and not a.variables[vc.name].needs_value:
            why = _needs_value_breaking(vc.name, deps, f"variable '{vc.name}' is now required without a default")
            if why:
                change.breaking.append(Breaking("variable_required", why))


def _flag_undeclared(change: PromptChange, a: PromptSpec | None, b: PromptSpec) -> None:
    if not b.variables_declared:
        return
    before = (a.referenced_variables() - set(a.variables)) if a and a.variables_declared else set()
    for name in sorted(b.referenced_variables() - set(b.variables) - before):
        change.breaking.append(
            Breaking(
                "undeclared_variable",
                f"the template reads '{name}', which is not declared under variables: (rendering fails: undefined)",
            )
        )


def _flag_step_values(change: PromptChange, b: PromptSpec, new: Snapshot) -> None:
    """Literal ``vars:`` values the new prompt's types refuse (the check ``llmops validate`` runs)."""
    from llmops_cli.prompts.checks import step_variable_findings

    raw = new.config.get("chains")
    chains: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for use in change.dependents.steps:
        steps = chain_steps(chains.get(use.chain))
        step = steps[use.index] if use.index < len(steps) and isinstance(steps[use.index], dict) else None
        for finding in step_variable_findings(use, b, step):
            if finding.kind == "type":
                change.breaking.append(Breaking("variable_type", finding.message))


# -- one prompt ----------------------------------------------------------------------------------


def _same(a: PromptEntry, b: PromptEntry) -> bool:
    if a.file != b.file or a.text != b.text or a.error != b.error:
        return False
    return examples_diff(a.spec, b.spec) is None


def compare_prompt(name: str, a: PromptEntry | None, b: PromptEntry | None, new: Snapshot) -> PromptChange | None:
    """The change to prompt ``name`` from ``a`` to ``b`` (either may be absent); None if unchanged."""
    if a is not None and b is not None and _same(a, b):
        return None
    deps = find_dependents(new.config, name)
    status = "added" if a is None else "deleted" if b is None else "renamed" if a.file != b.file else "modified"
    change = PromptChange(name, status, a.file if a else None, b.file if b else None, deps)
    sa, sb = (a.spec if a else None), (b.spec if b else None)
    change.text = _text_diffs(name, sa, sb, change.file_from, change.file_to)
    change.examples = examples_diff(sa, sb)
    if b is None:
        if deps.references:
            change.breaking.append(
                Breaking("prompt_deleted", "prompt deleted but still referenced: " + "; ".join(deps.references))
            )
        return change
    if b.error:
        change.breaking.append(Breaking("prompt_invalid", f"prompt file is invalid: {b.error}"))
    if a is not None and a.error:
        change.notes.append(f"at the old revision the prompt was invalid: {a.error}")
    if sb is None:
        return change
    if sa is None:
        change.variables_added = list(sb.variables.values())
    else:
        change.fields = {
            k: (getattr(sa, k), getattr(sb, k)) for k in ("description", "model") if getattr(sa, k) != getattr(sb, k)
        }
        _variable_changes(change, sa, sb)
        change.params = _param_changes(sa, sb)
        _flag_variables(change, sa, sb)
    _flag_undeclared(change, sa, sb)
    _flag_step_values(change, sb, new)
    if status in ("modified", "renamed") and not (
        change.text or change.fields or change.params or change.examples or change.breaking
        or change.variables_added or change.variables_removed or change.variables_changed
    ):  # fmt: skip
        change.notes.append("only comments or formatting changed" if status == "modified" else "file moved")
    return change


def compare(old: Snapshot, new: Snapshot, names: Sequence[str] | None = None) -> DiffReport:
    """Compare the prompts of two snapshots (all of them, or only ``names``)."""
    every = sorted(set(old.prompts) | set(new.prompts))
    if names:
        unknown = [n for n in names if n not in every]
        if unknown:
            raise UsageError(
                f"unknown prompt {', '.join(repr(u) for u in unknown)}: declared on neither side of the diff",
                hint=f"Prompts on either side: {', '.join(every) or 'none'}.",
            )
    changes: list[PromptChange] = []
    unchanged: list[str] = []
    for name in names or every:
        change = compare_prompt(name, old.prompts.get(name), new.prompts.get(name), new)
        if change is None:
            unchanged.append(name)
        else:
            changes.append(change)
    return DiffReport(old, new, changes, unchanged)


def prompt_diff(
    root: Path,
    names: Sequence[str] | None = None,
    *,
    from_rev: str | None = None,
    to_rev: str | None = None,
) -> DiffReport:
    """Diff the prompts of the project at ``root``: ``from_rev`` (default: the merge-base with the
    default branch) against ``to_rev`` (default: the work tree)."""
    old, new = snapshots(root, from_rev, to_rev)
    return compare(old, new, names)
