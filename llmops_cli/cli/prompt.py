"""``llmops prompt``: list, show, render and diff the project's prompt files."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.base import LlmopsTyper
from llmops_cli.cli.options import JsonOpt, VarOpt, VarsFileOpt, parse_vars
from llmops_cli.cli.state import STATE

app = LlmopsTyper(help="Prompts as code: list, show, render, lint and diff prompt files.")

NameArg = Annotated[str, typer.Argument(help="Prompt name (under `prompts:` in llmops.yaml).", show_default=False)]


class DiffFormat(str, Enum):
    terminal = "terminal"
    markdown = "markdown"
    json = "json"


def _variables_summary(spec: Any) -> str:
    parts = []
    for v in spec.variables.values():
        parts.append(f"{v.name}{'*' if v.needs_value else ''}: {v.type}")
    return ", ".join(parts)


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """Show each prompt: file, variables (* = required), default model and description."""
    from llmops_cli.prompts import load_prompt

    cfg = STATE.config()
    rows = []
    for name, ref in cfg.prompts.items():
        spec = load_prompt(cfg, name)
        rows.append(
            {
                "name": name,
                "file": ref.file,
                "variables": [{"name": v.name, **v.as_dict()} for v in spec.variables.values()],
                "model": spec.model,
                "description": ref.raw.get("description") or spec.description or "",
                "_summary": _variables_summary(spec),
            }
        )
    if json_out:
        output.print_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return
    if not rows:
        output.info("no prompts declared (add them under `prompts:` in llmops.yaml)")
        return
    table = [[r["name"], r["file"], r["_summary"], r["model"] or "—", r["description"]] for r in rows]
    output.table(None, ["prompt", "file", "variables", "model", "description"], table)


@app.command()
def show(name: NameArg, json_out: JsonOpt = False) -> None:
    """Show a prompt file with its variables, params and what depends on it."""
    from llmops_cli.cli import prompt_view
    from llmops_cli.prompts import find_dependents, load_prompt

    cfg = STATE.config()
    spec = load_prompt(cfg, name)
    deps = find_dependents(cfg.data, name)
    if json_out:
        output.print_json(
            {
                "name": spec.name,
                "file": spec.file,
                "description": spec.description,
                "model": spec.model,
                "variables": [{"name": v.name, **v.as_dict()} for v in spec.variables.values()],
                "params": spec.raw.get("params") or {},
                "examples": spec.examples_file,
                "dependents": deps.as_dict(),
            }
        )
        return
    text = cfg.resolve_path(spec.file).read_text(encoding="utf-8")
    prompt_view.show_prompt(spec, text, deps)


def _tokenizer(cfg: Any, model: str) -> Any:
    """The tokenizer of a local model (a quantized variant uses its base model's)."""
    from llmops_cli.errors import UsageError, require

    if model in cfg.quantized:
        model = str(cfg.quantized[model].raw.get("model"))
    if model not in cfg.models:
        raise UsageError(f"unknown model '{model}'; declared: {', '.join(cfg.models) or 'none'}")
    spec = cfg.models[model]
    if spec.is_remote:
        raise UsageError(
            f"model '{model}' is remote ({spec.provider}); its chat template is applied by the server",
            hint="Use --model with a local model (one with 'source:') to see the exact text.",
        )
    require("transformers", extra="models", purpose="--chat-template")
    from transformers import AutoTokenizer

    from llmops_cli.models import materialize

    with output.err_console().status(f"loading the tokenizer of {model}"):
        path = materialize(spec, cfg.root)
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


@app.command("render")
def render_(
    name: NameArg,
    var: VarOpt = None,
    vars_file: VarsFileOpt = None,
    json_out: JsonOpt = False,
    chat_template: Annotated[
        bool,
        typer.Option("--chat-template", help="Print the exact text the model sees (applies its chat template)."),
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model whose chat template to use (default: the prompt's).")
    ] = None,
    no_examples: Annotated[bool, typer.Option("--no-examples", help="Leave out the few-shot examples.")] = False,
) -> None:
    """Render a prompt with variables and print the messages (or, with --chat-template, the text)."""
    from llmops_cli.errors import UsageError
    from llmops_cli.prompts import load_prompt, render, to_prompt_text

    cfg = STATE.config()
    spec = load_prompt(cfg, name)
    messages = render(spec, parse_vars(var, vars_file), include_examples=not no_examples)
    text = None
    if chat_template:
        model_name = model or spec.model
        if not model_name:
            raise UsageError(f"prompt '{name}' names no model", hint="Pass --model NAME.")
        text = to_prompt_text(messages, _tokenizer(cfg, model_name))
    if json_out:
        output.print_json({"prompt": name, "messages": messages, **({"text": text} if text is not None else {})})
        return
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from rich.markup import escape
    from rich.rule import Rule

    con = output.console()
    for message in messages:
        con.print(Rule(f"[bold]{message['role']}[/bold]", align="left"))
        con.print(escape(message["content"]))


@app.command()
def lint(
    names: Annotated[
        list[str] | None, typer.Argument(help="Prompts to lint (default: every prompt).", show_default=False)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Render every prompt with its declared examples and variable types, no model needed; exit 2 on a failure.

    Each prompt is rendered with only its required variables, with all of them, and with each
    few-shot example row; values come from defaults, then examples, then a sample of the declared
    type. Also warns about declared variables no template uses. The pre-commit hook llmops-prompt-lint.
    """
    from llmops_cli.errors import ConfigError
    from llmops_cli.prompts.lint import lint_prompts
    from llmops_cli.text import plural

    results = lint_prompts(STATE.config(), names or None)
    failed = [r for r in results if not r.ok]
    if json_out:
        output.print_json([r.as_dict() for r in results])
    else:
        for r in results:
            for warning in r.warnings:
                output.warn(f"{r.name} ({r.file}): {warning}")
            if r.ok:
                output.success(f"{r.name} ({r.file}): renders ({plural(r.renders, 'render')})")
        if not results:
            output.info("no prompts declared (add them under `prompts:` in llmops.yaml)")
    if failed:
        problems = [f"{r.name} ({r.file}): {e}" for r in failed for e in r.errors]
        raise ConfigError(
            f"{plural(len(failed), 'prompt')} failed to render",
            problems=problems,
            hint="Declare or guard the variables named above (`{% if name is defined %}`), fix the example rows, "
            "then rerun 'llmops prompt lint'.",
        )


@app.command()
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
    evals = _eval_both_sides(
        report, eval_suites or [], limit=limit, no_adapters=no_adapters, quiet=fmt is not DiffFormat.terminal
    )
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
            sys.stdout.write(_eval_markdown(name, new))
    else:
        from llmops_cli.cli import prompt_view

        prompt_view.print_diff(report)
        from llmops_cli.cli.evaluate import _print_baseline

        for _, (_, new) in evals.items():
            _print_baseline(new)
    if fail_on_breaking and report.breaking:
        names_broken = sorted({name for name, _ in report.breaking})
        raise BreakingChange(
            f"{len(report.breaking)} breaking prompt change(s) in {', '.join(names_broken)}",
            hint="Update the dependents (chain step vars:, eval datasets) or keep the old variables, then rerun.",
        )


def _eval_both_sides(report: Any, suites: list[str], *, limit: int | None, no_adapters: bool, quiet: bool) -> dict:
    """suite -> (old result, new result with baseline deltas), for the suites that use a changed prompt."""
    from llmops_cli.cli.evaluate import _progress
    from llmops_cli.evals.history import eval_prompt_versions

    out: dict[str, Any] = {}
    if not suites:
        return out
    cfg = STATE.config()
    for suite in suites:
        from llmops_cli.evals.runner import suite_spec

        suite_spec(cfg, suite)  # unknown suite: a clear error before any generation
        with _progress(f"{suite} (both prompt versions)", enabled=not (quiet or STATE.quiet)) as report_progress:
            pair = eval_prompt_versions(
                cfg,
                suite,
                report,
                progress=report_progress,
                limit=limit,
                use_adapters=not no_adapters,
                adversarial=False,
            )
        if pair is None:
            output.warn(f"eval {suite}: its target uses none of the changed prompts; nothing to compare")
            continue
        out[suite] = pair
    return out


def _eval_markdown(suite: str, result: Any) -> str:
    baseline = result.baseline or {}
    lines = [
        "",
        f"### Eval `{suite}`: {baseline.get('ref')} → new",
        "",
        "| metric | old | new | Δ | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for metric, c in baseline.get("metrics", {}).items():

        def f(v: Any) -> str:
            return "—" if v is None or v != v else f"{v:.4g}"

        lines.append(
            f"| {metric} | {f(c.get('baseline_mean'))} | {f(c.get('current_mean'))} | {f(c.get('delta_mean'))} "
            f"| [{f(c.get('ci_low'))}, {f(c.get('ci_high'))}] |"
        )
    return "\n".join(lines) + "\n"
