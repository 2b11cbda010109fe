"""summary.md: a PR comment. Headline, aggregates with thresholds (and baseline deltas), worst cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmops_cli.evals.reports.common import (
    as_list,
    baseline_metrics,
    failed_assertions,
    fmt,
    fmt_delta,
    shorten,
    split_key,
    stat_columns,
    thresholds_for,
)
from llmops_cli.evals.results import SuiteResult, worst_cases
from llmops_cli.paths import atomic_write_text
from llmops_cli.text import plural

WORST_N = 5


def render_markdown(results: SuiteResult | Sequence[SuiteResult]) -> str:
    suites = as_list(results)
    passed = all(s.passed for s in suites)
    icon = "✅" if passed else "❌"
    names = ", ".join(f"`{s.suite}`" for s in suites)
    lines = [f"## {icon} llmops eval {'passed' if passed else 'FAILED'}: {names}", ""]
    for result in suites:
        lines += _suite_section(result, heading=len(suites) > 1)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(results: SuiteResult | Sequence[SuiteResult], path: Path) -> Path:
    atomic_write_text(path, render_markdown(results))
    return path


def _suite_section(result: SuiteResult, *, heading: bool) -> list[str]:
    lines: list[str] = []
    if heading:
        ok = result.passed and not result.error_count  # a run with errored cases does not pass
        lines += [f"### {'✅' if ok else '❌'} `{result.suite}`", ""]
    n_err = sum(1 for c in result.cases if c.error is not None)
    n_cached = sum(1 for c in result.cases if c.cached)
    failed = result.failed_thresholds()
    lines.append(
        f"{plural(len(result.cases), 'case')} ({plural(n_err, 'error')}, {n_cached} from cache) on "
        f"`{result.dataset_ref}`, "
        f"{len(result.thresholds) - len(failed)}/{len(result.thresholds)} thresholds met, "
        f"{result.seconds:.1f} s. Config `{result.config_hash[:12]}`."
        + (" Cached cases report the latency measured when they were generated." if n_cached else "")
    )
    for t in failed:
        lines.append(f"- ❌ **{t.key}**: {fmt(t.actual)}, expected {t.op} {fmt(t.limit)}")
    lines += ["", *_aggregates_table(result), ""]
    if result.baseline:
        ref = result.baseline.get("ref", "baseline")
        lines += [f"Δ = current − `{ref}` on paired cases, with a 95% bootstrap CI.", ""]
    lines += _worst_table(result)
    return lines + [""]


def _aggregates_table(result: SuiteResult) -> list[str]:
    stats = stat_columns(result)
    deltas = baseline_metrics(result)
    header = ["metric", *stats, "threshold", "status"] + (["Δ vs baseline [95% CI]"] if result.baseline else [])
    rows = [_row(header), _row(["---"] * len(header))]
    metrics = list(dict.fromkeys([*result.aggregates, *(split_key(t.key)[0] for t in result.thresholds)]))
    for metric in metrics:
        values = result.aggregates.get(metric, {})
        gates = thresholds_for(result, metric)
        gate_text = "<br>".join(f"{_stat_label(t.key)}{t.op} {fmt(t.limit)}" for t in gates) or "—"
        status = "—" if not gates else ("✅" if all(t.passed for t in gates) else "❌")
        row = [f"`{metric}`", *(fmt(values.get(s)) for s in stats), gate_text, status]
        if result.baseline:
            row.append(fmt_delta(deltas.get(metric)))
        rows.append(_row(row))
    return rows


def _worst_table(result: SuiteResult) -> list[str]:
    worst = worst_cases(result, WORST_N)
    if not worst:
        return []
    lines = [f"<details><summary>{len(worst)} worst cases</summary>", ""]
    lines.append(_row(["case", "scores", "failed", "prediction", "reference"]))
    lines.append(_row(["---"] * 5))
    for case in worst:
        score = "error" if case.error else ", ".join(f"{k}={fmt(v, 3)}" for k, v in case.scores.items())
        failed = case.error and shorten(case.error, 60) or ", ".join(failed_assertions(case)) or "—"
        case_id = case.case_id + (f" #{case.sample}" if case.sample else "")
        texts = [_text(failed), _text(shorten(case.prediction)), _text(shorten(case.reference))]
        lines.append(_row([f"`{case_id}`", score, *texts]))
    return lines + ["", "</details>"]


def _stat_label(key: str) -> str:
    _, stat = split_key(key)
    return "" if stat == "mean" else f"{stat} "


def _text(value: str) -> str:
    # Model output is untrusted: GitHub would render raw HTML tags inside a PR comment.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _row(cells: Sequence[str]) -> str:
    # A pipe or newline inside a cell would break the table.
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
