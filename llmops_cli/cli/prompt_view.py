"""Rich rendering for ``llmops prompt show`` and the terminal format of ``llmops prompt diff``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from llmops_cli.cli import output

if TYPE_CHECKING:
    from llmops_cli.prompts import Dependents, DiffReport, PromptChange, PromptSpec, VariableSpec


def _value(value: Any) -> str:
    if value is None:
        return "—"
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)


def _syntax(text: str, lexer: str, *, line_numbers: bool = False) -> Any:
    from rich.syntax import Syntax

    return Syntax(text, lexer, theme="ansi_dark", background_color="default", word_wrap=True, line_numbers=line_numbers)


def dependents_line(deps: Dependents) -> str:
    from rich.markup import escape

    parts = []
    for label, names in (("chains", deps.chains), ("evals", deps.evals), ("adapters", deps.adapters),
                         ("packages", deps.packages)):  # fmt: skip
        parts.append(f"{label} {escape(', '.join(names)) if names else '—'}")
    return "used by: " + "; ".join(parts)


# -- prompt show ---------------------------------------------------------------------------------


def show_prompt(spec: PromptSpec, text: str, deps: Dependents) -> None:
    from rich.markup import escape

    con = output.console()
    con.print(f"[bold]{escape(spec.name)}[/bold]  {escape(spec.file)}")
    con.print(_syntax(text.rstrip("\n"), "yaml", line_numbers=True))
    rows = [[v.name, v.type, "yes" if v.needs_value else "no", _value(v.default) if v.has_default else "—",
             v.description or ""] for v in spec.variables.values()]  # fmt: skip
    title = "variables" if spec.variables_declared else "variables (inferred from the template)"
    output.table(title, ["variable", "type", "required", "default", "description"], rows)
    params = {k: v for k, v in spec.params.as_dict().items() if k in spec.declared_params}
    if params:
        output.table("params", ["param", "value"], [[k, _value(v)] for k, v in params.items()])
    if spec.examples_file:
        con.print(f"few-shot examples: {escape(spec.examples_file)} ({output.plural(len(spec.examples), 'row')})")
    con.print(dependents_line(deps))
    if deps.steps:
        rows = [[s.label, ", ".join(s.explicit_vars) if s.explicit_vars is not None else "(implicit)",
                 s.model or "", s.adapter or ""] for s in deps.steps]  # fmt: skip
        output.table("chain steps", ["step", "vars", "model", "adapter"], rows)


# -- prompt diff ---------------------------------------------------------------------------------


def _variables(change: PromptChange) -> None:
    def cells(v: VariableSpec) -> list[str]:
        return [v.name, v.type, "yes" if v.required else "no", _value(v.default) if v.has_default else "—"]

    rows = [["[green]added[/green]", *cells(v)] for v in change.variables_added]
    for v in change.variables_removed:
        renamed = f" → {change.renamed_variables[v.name]}?" if v.name in change.renamed_variables else ""
        rows.append([f"[red]removed{renamed}[/red]", *cells(v)])
    for c in change.variables_changed:
        moves = [f"{_value(c.changes[k][0])} → {_value(c.changes[k][1])}" if k in c.changes else ""
                 for k in ("type", "required", "default")]  # fmt: skip
        what = "[yellow]changed[/yellow]" + (" (description)" if "description" in c.changes else "")
        rows.append([what, c.name, *moves])
    if rows:
        output.table("variables", ["change", "variable", "type", "required", "default"], rows)


def _examples(change: PromptChange) -> None:
    from rich.markup import escape

    ex = change.examples
    if ex is None:
        return
    con = output.console()
    moved = f" ({escape(ex.file_from or '—')} → {escape(ex.file_to or '—')})" if ex.file_from != ex.file_to else ""
    con.print(
        f"few-shot examples{moved}: [green]{len(ex.added)} added[/green], [red]{len(ex.removed)} removed[/red], "
        f"[yellow]{len(ex.modified)} modified[/yellow], {ex.unchanged} unchanged"
    )
    if ex.error:
        output.warn(ex.error)
    lines = [f"+ {json.dumps(r, ensure_ascii=False)}" for r in ex.added]
    lines += [f"- {json.dumps(r, ensure_ascii=False)}" for r in ex.removed]
    for old, new in ex.modified:
        lines += [f"- {json.dumps(old, ensure_ascii=False)}", f"+ {json.dumps(new, ensure_ascii=False)}"]
    if lines:
        con.print(_syntax("\n".join(lines), "diff"))


def _change(change: PromptChange) -> None:
    from rich.markup import escape
    from rich.rule import Rule

    con = output.console()
    mark = "  [bold red]⚠ breaking[/bold red]" if change.breaking else ""
    con.print(Rule(f"[bold]{escape(change.name)}[/bold]  {change.status}{mark}", align="left"))
    files = change.file_to or change.file_from or ""
    if change.status == "renamed":
        files = f"{change.file_from} → {change.file_to}"
    con.print(f"file {escape(files)}")
    con.print(dependents_line(change.dependents))
    for b in change.breaking:
        con.print(f"[red]⚠ {b.kind}:[/red] {escape(b.reason)}")
    for note in change.notes:
        con.print(f"[dim]{escape(note)}[/dim]")
    for key, diff in change.text.items():
        con.print(f"[bold]{key}[/bold]")
        con.print(_syntax(diff, "diff"))
    if change.fields:
        output.table(
            "fields", ["field", "from", "to"], [[k, _value(a), _value(b)] for k, (a, b) in change.fields.items()]
        )
    _variables(change)
    if change.params:
        output.table("params", ["param", "from", "to"], [[k, _value(a), _value(b)] for k, a, b in change.params])
    _examples(change)
    con.print()


def print_diff(report: DiffReport) -> None:
    from rich.markup import escape

    con = output.console()
    con.print(f"[bold]prompt diff[/bold]  {escape(report.old.label)} → {escape(report.new.label)}")
    if report.breaking:
        con.print(f"[bold red]⚠ {len(report.breaking)} breaking change(s)[/bold red]")
        for name, b in report.breaking:
            con.print(f"  [red]•[/red] {escape(name)}: {escape(b.reason)}")
    con.print()
    for change in report.changes:
        _change(change)
    changed = len(report.changes)
    tail = f"{changed} prompt(s) changed, {len(report.unchanged)} unchanged"
    if report.breaking:
        con.print(f"{tail}; [bold red]{len(report.breaking)} breaking[/bold red]")
    elif changed:
        con.print(f"{tail}; [green]no breaking changes[/green]")
    else:
        con.print("no prompt changes")
