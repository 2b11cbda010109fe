"""``llmops eval``: run eval suites, gate CI on thresholds and regressions, write reports.

(Named ``evaluate.py``, not ``eval.py``: ``eval`` is a Python builtin.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmops_cli.cli import output, render_eval
from llmops_cli.cli.options import JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE


def eval_command(
    suites: Annotated[
        list[str] | None, typer.Argument(help="Suites to run (under evals: in llmops.yaml; default: all).")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="Side by side: run the suite once per model, comma-separated; MODEL or MODEL+ADAPTER "
            "(models: or quantized: names), e.g. base,base+support-lora,base-4bit.",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Compare with registered results: eval/SUITE@vN, or a git revision (the results committed there).",
            metavar="REF",
        ),
    ] = None,
    fail_on_regression: Annotated[
        float | None,
        typer.Option(
            "--fail-on-regression",
            help="With --baseline: exit 5 when a metric got worse by more than DELTA and its 95% CI excludes 0.",
            metavar="DELTA",
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write results.json, junit.xml, summary.md and report.html here."),
    ] = None,
    repeat: Annotated[int | None, typer.Option("--repeat", min=1, help="Samples per case (pass@k, variance).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Base seed for sampled generations.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N dataset cases.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Cases generated together.")] = 8,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Generate everything again (refreshes the cache).")
    ] = False,
    no_adapters: Annotated[
        bool, typer.Option("--no-adapters", help="Ignore the adapters chain steps name (use the base model).")
    ] = False,
    no_adversarial: Annotated[
        bool, typer.Option("--no-adversarial", help="Skip the suite's injection, leakage and fuzz probes.")
    ] = False,
    no_save: Annotated[bool, typer.Option("--no-save", help="Do not register the results as eval/SUITE/vN.")] = False,
    allow_code: Annotated[
        bool,
        typer.Option(
            "--allow-code",
            help="Allow custom metrics and call steps to run project Python code, and models' trust_remote_code.",
        ),
    ] = False,
    allow_errors: Annotated[
        bool,
        typer.Option(
            "--allow-errors",
            help="Do not fail the run (exit 8) when cases errored; they are still reported and left unscored.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run eval suites on their targets; exit 5 when a threshold (or --fail-on-regression) fails,
    8 when any case errored (unless --allow-errors). A gate on a metric no case was scored on fails.

    Outputs are cached in .llmops/cache/eval.sqlite by model fingerprint, adapter, rendered prompt
    and parameters, so re-running an unchanged suite costs almost nothing.
    """
    from llmops_cli.evals.runner import EvalOptions
    from llmops_cli.evals.workflow import EvalHooks, check_outcome, run_evals

    consent_to_code(allow_code)
    cfg = STATE.config()
    options = EvalOptions(
        use_cache=not no_cache,
        limit=limit,
        repeat=repeat,
        seed=seed,
        batch_size=batch_size,
        use_adapters=not no_adapters,
        allow_code=allow_code,
        adversarial=not no_adversarial,
    )
    quiet = json_out
    hooks = EvalHooks(
        progress=lambda text: render_eval.eval_progress(text, enabled=not (quiet or STATE.quiet)),
        on_result=None if quiet else (lambda result: render_eval.print_result(result, allow_errors=allow_errors)),
        on_baseline=None if quiet else render_eval.print_baseline,
        on_saved=None if quiet else (lambda version: output.info(f"registered {version.tag}")),
        on_not_saved=output.warn,
        on_side_by_side=None if quiet else render_eval.side_by_side,
    )
    run = run_evals(cfg, suites, options, models=models, baseline=baseline,
                    fail_on_regression=fail_on_regression, save=not no_save, hooks=hooks)  # fmt: skip
    if output_dir is not None:
        from llmops_cli.evals.reports import write_reports

        written = write_reports(run.results, output_dir)
        if not json_out:
            output.info("reports: " + ", ".join(str(p) for p in written.values()))
    if json_out:
        from llmops_cli.evals.reports.json_report import results_document

        output.print_json(results_document(run.results))
    check_outcome(run, allow_errors=allow_errors, warn=None if json_out else output.warn)
