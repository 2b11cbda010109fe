"""Rendering shared by ``llmops eval`` and ``llmops prompt diff --eval``: result tables, baseline
deltas, the side-by-side model table, a Markdown delta table, and the eval progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from llmops_cli.cli import output
from llmops_cli.text import plural

if TYPE_CHECKING:
    from llmops_cli.evals.results import SuiteResult


@contextlib.contextmanager
def eval_progress(text: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar over a suite's cases; the eval runner reports ``(done, total)`` (one phase), adapted here."""
    with output.progress(f"eval {text}", enabled=enabled) as report:
        yield lambda done, total: report("", done, total)


def label(result: SuiteResult) -> str:
    from llmops_cli.evals import workflow

    return workflow.label(result)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_result(result: SuiteResult, *, allow_errors: bool = False) -> None:
    from llmops_cli.evals.results import worst_cases

    gated = {t.key.rsplit(".", 1)[0]: t for t in result.thresholds}
    rows = []
    for metric, stats in result.aggregates.items():
        gate = gated.get(metric)
        status = "" if gate is None else ("[green]pass[/]" if gate.passed else "[red]FAIL[/]")
        rows.append(
            [
                metric,
                fmt(stats.get("corpus", stats.get("mean"))),
                fmt(stats.get("stderr")),
                fmt(stats.get("p50")),
                fmt(stats.get("p95")),
                fmt(stats.get("n")),
                "" if gate is None else f"{gate.op} {gate.limit:g} {status}",
            ]
        )
    cached = sum(c.cached for c in result.cases)
    errors = result.error_count
    verdict = "PASSED" if result.passed else "FAILED"
    if errors and result.passed:
        verdict = "PASSED (errors allowed)" if allow_errors else "FAILED (errors)"
    title = (
        f"{result.suite}{label(result)}: {plural(len(result.cases), 'case')}, {cached} cached, "
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


def print_baseline(result: SuiteResult) -> None:
    baseline = result.baseline or {}
    rows = []
    for metric, c in baseline.get("metrics", {}).items():
        rows.append(
            [
                metric,
                fmt(c.get("baseline_mean")),
                fmt(c.get("current_mean")),
                f"{c.get('delta_mean', 0):+.4g}" if c.get("delta_mean") == c.get("delta_mean") else "-",
                f"[{fmt(c.get('ci_low'))}, {fmt(c.get('ci_high'))}]",
                fmt(c.get("n_paired")),
            ]
        )
    output.table(
        f"{result.suite}{label(result)} vs {baseline.get('ref')}",
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


def side_by_side(results: list[SuiteResult]) -> None:
    """One row per model: the quality metrics, latency and tokens people choose a model on."""
    metrics: list[str] = []
    for r in results:
        metrics += [m for m in r.aggregates if m not in metrics]
    rows = []
    for r in results:
        row = [str(r.target.get("override") or "default")]
        for m in metrics:
            stats = r.aggregates.get(m, {})
            row.append(fmt(stats.get("corpus", stats.get("mean"))))
        tokens = [c.tokens["completion"] for c in r.cases if c.tokens.get("completion") is not None]
        latencies = sorted(c.latency_ms for c in r.cases if c.latency_ms is not None)
        row.append(fmt(latencies[len(latencies) // 2] if latencies else None))
        row.append(fmt(sum(tokens) / len(tokens) if tokens else None))
        row.append("pass" if r.passed else "FAIL")
        rows.append(row)
    output.table(f"{results[0].suite}: side by side", ["model", *metrics, "p50 ms", "tokens out", "gates"], rows)


def eval_markdown(suite: str, result: Any) -> str:
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
