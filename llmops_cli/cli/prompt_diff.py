"""``llmops prompt diff``: what changed in prompts between two revisions, and what it breaks."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Any

import typer

from llmops_cli.cli import output, render_eval
from llmops_cli.cli.state import STATE


class DiffFormat(str, Enum):
    terminal = "terminal"
    markdown = "markdown"
    json = "json"


def diff(
    names: Annotated[
        list[str] | None, typer.Argument(help="Prompts to compare (default: every prompt).", show_default=False)
    ] = None,
    from_rev: Annotated[
        str | None,
        typer.Option("--from", help="Old side: a git revision (default: merge-base with main/master).", metavar="REV"),
    ] = None,
    to_rev: Annotated[
        str | None, typer.Option("--to", help="New side: a git revision (default: the working tree).", metavar="REV")
    ] = None,
    format_: Annotated[
        DiffFormat, typer.Option("--format", help="terminal, markdown (a PR comment) or json.")
    ] = DiffFormat.terminal,
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    fail_on_breaking: Annotated[
        bool, typer.Option("--fail-on-breaking", help="Exit 6 when a change breaks a dependent chain, eval or package.")
    ] = False,
    eval_suites: Annotated[
        list[str] | None,
        typer.Option(
            "--eval",
            help="Also run this eval suite on both prompt versions and show the metric deltas (repeatable).",
            metavar="SUITE",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="With --eval: only the first N cases.")] = None,
    no_adapters: Annotated[
        bool, typer.Option("--no-adapters", help="With --eval: ignore the adapters chain steps name.")
    ] = False,
) -> None:
    """Show what changed in prompts between two revisions and flag changes that break dependents.

    Compares templates, system text, variables, params and few-shot examples; lists the chains,
    evals, adapters and packages using each prompt.
    """
    from llmops_cli.errors import BreakingChange
    from llmops_cli.prompts import prompt_diff

    report = prompt_diff(STATE.project_root(), names or None, from_rev=from_rev, to_rev=to_rev)
    fmt = DiffFormat.json if json_out else format_
    evals: dict[str, Any] = {}
    if eval_suites:
        from llmops_cli.evals.prompt_compare import eval_both_sides

        enabled = fmt is DiffFormat.terminal and not STATE.quiet
        evals = eval_both_sides(
            STATE.config(), report, eval_suites, limit=limit, use_adapters=not no_adapters,
            progress=lambda text: render_eval.eval_progress(text, enabled=enabled), on_skipped=output.warn,
        )  # fmt: skip
    if fmt is DiffFormat.json:
        from llmops_cli.prompts.report import report_dict

        data = report_dict(report)
        if eval_suites:
            data["evals"] = {name: new.baseline for name, (_, new) in evals.items()}
        output.print_json(data)
    elif fmt is DiffFormat.markdown:
        from llmops_cli.prompts.report import report_markdown

        sys.stdout.write(report_markdown(report))
        for name, (_, new) in evals.items():
            sys.stdout.write(render_eval.eval_markdown(name, new))
    else:
        from llmops_cli.cli import prompt_view

        prompt_view.print_diff(report)
        for _, (_, new) in evals.items():
            render_eval.print_baseline(new)
    if fail_on_breaking and report.breaking:
        names_broken = sorted({name for name, _ in report.breaking})
        raise BreakingChange(
            f"{len(report.breaking)} breaking prompt change(s) in {', '.join(names_broken)}",
            hint="Update the dependents (chain step vars:, eval datasets) or keep the old variables, then rerun.",
        )
