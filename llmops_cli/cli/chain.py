"""``llmops chain``: list and run the chains declared in llmops.yaml."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.base import LlmopsTyper
from llmops_cli.cli.options import JsonOpt, VarOpt, VarsFileOpt, consent_to_code, parse_vars
from llmops_cli.cli.state import STATE

app = LlmopsTyper(help="List and run chains (retrieve, prompt, transform and call steps).")


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """Show each chain with its inputs and steps."""
    cfg = STATE.config()
    rows = []
    for name, chain in cfg.chains.items():
        steps = [f"{s.kind} {s.target}" for s in chain.steps]
        rows.append({"name": name, "inputs": list(chain.inputs), "steps": steps, "description": chain.description})
    if json_out:
        output.print_json(rows)
        return
    table_rows = [[r["name"], ", ".join(r["inputs"]), " → ".join(r["steps"]), r["description"]] for r in rows]
    output.table(None, ["chain", "inputs", "steps", "description"], table_rows)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_trace(run: Any) -> None:
    from rich.markup import escape

    rows = []
    for s in run.steps:
        tokens = f"{s.tokens.get('prompt', 0)}+{s.tokens.get('completion', 0)}" if s.tokens else ""
        state = "skipped" if s.skipped else ("error" if s.error else f"{s.latency_ms:.0f} ms")
        inputs = _short(s.inputs.get("query") or s.inputs.get("variables") or s.inputs.get("input") or s.inputs, 80)
        rows.append(
            [
                f"{s.index + 1} ({s.id})",
                f"{s.kind} {s.target}",
                state,
                tokens,
                escape(inputs),
                escape(_short(s.error or s.value)),
            ]
        )
    output.table(
        f"trace of chain {run.chain} (run {run.run_id})", ["step", "kind", "time", "tokens", "inputs", "output"], rows
    )
    for s in run.steps:
        for chunk in s.details.get("chunks", []):
            where = chunk["source"] + (f" › {chunk['heading']}" if chunk.get("heading") else "")
            output.console().print(
                f"  [dim]{s.id} #{chunk['rank']}[/dim] score {chunk['score']:.3f}  [bold]{escape(where)}[/bold]\n"
                f"    {escape(_short(chunk['text'], 300))}"
            )
        if s.details.get("adapter_disabled"):
            output.warn(f"step {s.id}: adapter '{s.details['adapter_disabled']}' disabled (--no-adapters)")


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="Chain to run.")],
    var: VarOpt = None,
    vars_file: VarsFileOpt = None,
    trace: Annotated[
        bool, typer.Option("--trace", help="Show every step's inputs, output, latency and tokens.")
    ] = False,
    no_adapters: Annotated[
        bool, typer.Option("--no-adapters", help="Use base models even where a step names an adapter.")
    ] = False,
    allow_code: Annotated[
        bool,
        typer.Option(
            "--allow-code",
            help="Allow `call` steps to run the project's Python functions, and models' trust_remote_code.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run a chain on the given variables and print its result (the run is saved to .llmops/traces/)."""
    from llmops_cli.chains import ChainRunner, ChainStepError
    from llmops_cli.chains.runtime import ProjectRuntime

    consent_to_code(allow_code)
    cfg = STATE.config()
    runner = ChainRunner(cfg, runtime=ProjectRuntime(cfg, use_adapters=not no_adapters), allow_code=allow_code)
    inputs = parse_vars(var, vars_file)
    try:
        status = output.err_console().status(f"running chain {name}") if not json_out else contextlib.nullcontext()
        with status:
            result = runner.run(name, inputs)
    except ChainStepError as exc:
        if trace:
            _print_trace(exc.run)
        raise
    if json_out:
        output.print_json(result.as_dict())
        return
    if trace:
        _print_trace(result)
    value = result.result
    output.console().print(value if isinstance(value, str) else repr(value), markup=False, highlight=False)
    tokens = result.tokens
    used = f"{tokens.get('prompt', 0)} prompt + {tokens.get('completion', 0)} completion tokens"
    output.info(f"[dim]{result.latency_ms:.0f} ms, {used}; trace: {result.trace_file}[/dim]")
