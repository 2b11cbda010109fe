"""``llmops eval``: run eval suites, gate CI on thresholds and regressions, write reports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE
from llmops_cli.text import plural

if TYPE_CHECKING:
    from llmops_cli.evals.results import SuiteResult


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
        progress=lambda label: _progress(label, enabled=not (quiet or STATE.quiet)),
        on_result=None if quiet else (lambda result: _print_result(result, allow_errors=allow_errors)),
        on_baseline=None if quiet else _print_baseline,
        on_saved=None if quiet else (lambda version: output.info(f"registered {version.tag}")),
        on_not_saved=output.warn,
        on_side_by_side=None if quiet else _side_by_side,
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


def _label(result: SuiteResult) -> str:
    from llmops_cli.evals.workflow import label

    return label(result)


@contextlib.contextmanager
def _progress(label: str, *, enabled: bool) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from llmops_cli.cli.progress import live_progress

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with live_progress(*columns, enabled=enabled) as bar:
        task = bar.add_task(f"eval {label}", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_result(result: SuiteResult, *, allow_errors: bool = False) -> None:
    from llmops_cli.evals.results import worst_cases

    gated = {t.key.rsplit(".", 1)[0]: t for t in result.thresholds}
    rows = []
    for metric, stats in result.aggregates.items():
        gate = gated.get(metric)
        status = "" if gate is None else ("[green]pass[/]" if gate.passed else "[red]FAIL[/]")
        rows.append(
            [
                metric,
                _fmt(stats.get("corpus", stats.get("mean"))),
                _fmt(stats.get("stderr")),
                _fmt(stats.get("p50")),
                _fmt(stats.get("p95")),
                _fmt(stats.get("n")),
                "" if gate is None else f"{gate.op} {gate.limit:g} {status}",
            ]
        )
    cached = sum(c.cached for c in result.cases)
    errors = result.error_count
    verdict = "PASSED" if result.passed else "FAILED"
    if errors and result.passed:
        verdict = "PASSED (errors allowed)" if allow_errors else "FAILED (errors)"
    title = (
        f"{result.suite}{_label(result)}: {plural(len(result.cases), 'case')}, {cached} cached, "
        f"{plural(errors, 'error')}, {result.seconds:.1f}s: {verdict}"
    )
    output.table(title, ["metric", "value", "stderr", "p50", "p95", "n", "threshold"], rows)
    if cached and "latency_ms" in result.aggregates:
        output.info(f"[dim]latency of the {plural(cached, 'cached case')}: as measured when generated[/dim]")
    for kind, per_metric in result.robustness.items():
        drops = ", ".join(
            f"{m} {d['clean']:.3g}→{d['fuzzed']:.3g}" for m, d in per_metric.items() if d["clean"] is not None
        )
        if drops:
            output.info(f"fuzz {kind}: {drops}")
    worst = [c for c in worst_cases(result, 3) if c.error or not c.ok]
    for case in worst:
        reason = case.error or ", ".join(k for k, ok in case.passed.items() if not ok)
        output.info(f"failing case {case.case_id}: {reason}: {case.prediction[:100]!r}")


def _print_baseline(result: SuiteResult) -> None:
    baseline = result.baseline or {}
    rows = []
    for metric, c in baseline.get("metrics", {}).items():
        rows.append(
            [
                metric,
                _fmt(c.get("baseline_mean")),
                _fmt(c.get("current_mean")),
                f"{c.get('delta_mean', 0):+.4g}" if c.get("delta_mean") == c.get("delta_mean") else "-",
                f"[{_fmt(c.get('ci_low'))}, {_fmt(c.get('ci_high'))}]",
                _fmt(c.get("n_paired")),
            ]
        )
    output.table(
        f"{result.suite}{_label(result)} vs {baseline.get('ref')}",
        ["metric", "baseline", "current", "Δ", "95% CI", "paired"],
        rows,
    )
    per_case = baseline.get("per_case", {})
    gated = [t.key.rsplit(".", 1)[0] for t in result.thresholds]
    metric = next((m for m in gated if m in per_case), next(iter(per_case), None))
    if metric:
        moved = sorted(per_case[metric].items(), key=lambda kv: kv[1])
        worst = [f"{cid} {d:+.3g}" for cid, d in moved[:5] if d < 0]
        best = [f"{cid} {d:+.3g}" for cid, d in reversed(moved[-5:]) if d > 0]
        if worst:
            output.info(f"{metric} got worse on: {', '.join(worst)}")
        if best:
            output.info(f"{metric} got better on: {', '.join(best)}")


def _side_by_side(results: list[SuiteResult]) -> None:
    """One row per model: the quality metrics, latency and tokens people choose a model on."""
    metrics: list[str] = []
    for r in results:
        metrics += [m for m in r.aggregates if m not in metrics]
    rows = []
    for r in results:
        row = [str(r.target.get("override") or "default")]
        for m in metrics:
            stats = r.aggregates.get(m, {})
            row.append(_fmt(stats.get("corpus", stats.get("mean"))))
        tokens = [c.tokens["completion"] for c in r.cases if c.tokens.get("completion") is not None]
        latencies = sorted(c.latency_ms for c in r.cases if c.latency_ms is not None)
        row.append(_fmt(latencies[len(latencies) // 2] if latencies else None))
        row.append(_fmt(sum(tokens) / len(tokens) if tokens else None))
        row.append("pass" if r.passed else "FAIL")
        rows.append(row)
    output.table(f"{results[0].suite}: side by side", ["model", *metrics, "p50 ms", "tokens out", "gates"], rows)
