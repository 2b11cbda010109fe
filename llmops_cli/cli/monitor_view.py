"""Rich rendering for ``llmops monitor``: the report's tables, and the same as a live dashboard.

Numbers never wrap or get cut: numeric columns are ``no_wrap``, only text folds, and a table too
wide for the console (a narrow terminal, a CI log) is shown as one ``field  value`` list per row
instead (:class:`~llmops_cli.cli.render_table.FitTable`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops_cli.cli.render_table import FitTable, sparkline
from llmops_cli.evals.reports.common import shorten
from llmops_cli.text import format_number, plural

if TYPE_CHECKING:
    from llmops_cli.monitor.report import MonitorReport

RECENT_COMMENTS = 5
REJECTED_REASONS = {401: "no or wrong API key", 413: "body over the size limit", 429: "busy or rate limited"}


def _table(title: str | None, columns: list[str], rows: list[list[Any]], *, styles: list[str] | None = None) -> Any:
    return FitTable(title, columns, rows, styles)


def header(report: MonitorReport) -> str:
    from rich.markup import escape

    w = report.window.to_dict()
    store = "" if report.store_exists else " [yellow](no requests logged yet)[/yellow]"
    return (
        f"[bold]{escape(report.project)}[/bold]  {w['start']} → {w['end']} ({w['duration']})  "
        f"store {escape(report.store)}{store}"
    )


def traffic_line(report: MonitorReport) -> str:
    """``served: 20 requests · rejected: 3,000 (401: 3,000)``: what the figures below rest on."""
    ops = report.ops
    line = f"served: {plural(ops.total.requests, 'request')}"
    if ops.rejected_total:
        counts = ", ".join(f"{status}: {format_number(n)}" for status, n in sorted(ops.rejected.items()))
        line += (
            f" · rejected by the gate: {format_number(ops.rejected_total)} ({counts}), left out of latency, errors "
            "and rates"
        )
    else:
        line += " · rejected by the gate (401/413/429): 0"
    return line


def operations(report: MonitorReport) -> list[Any]:
    ops = report.ops
    t, lat = ops.total, ops.total.latency_ms
    resolution = f"{ops.rates.resolution:g}s"
    head = ["requests", f"req/s ({resolution})", f"peak req/s ({resolution})", "p50 ms", "p95 ms", "p99 ms",
            "error rate", "4xx rate", "prompt tok", "completion tok", "tok/request"]  # fmt: skip
    per_request = None if not t.requests else t.tokens.total / t.requests
    row = [t.requests, ops.throughput_rps, ops.peak_rps, lat.p50, lat.p95, lat.p99, t.error_rate,
           t.client_error_rate, t.tokens.prompt, t.tokens.completion, per_request]  # fmt: skip
    out: list[Any] = [_table("Operations (served traffic)", head, [row]), f"[dim]{traffic_line(report)}[/dim]"]
    if ops.rejected_total:
        everything = ops.all.requests
        rows = [[str(status), REJECTED_REASONS.get(status, ""), n, n / everything if everything else None]
                for status, n in sorted(ops.rejected.items())]  # fmt: skip
        out.append(_table("Rejected by the gate", ["status", "reason", "requests", "share of logged"], rows))
    if t.requests or ops.rejected_total:
        series = ops.series
        bucket = report.to_dict()["operations"]["bucket"]
        spark_rows = [
            ["requests", sparkline([float(b.stats.requests) for b in series]), max(b.stats.requests for b in series)],
            ["p95 ms", sparkline([b.stats.latency_ms.p95 for b in series]),
             max((b.stats.latency_ms.p95 or 0.0 for b in series), default=0.0)],
            ["errors", sparkline([float(b.stats.errors) for b in series]), max(b.stats.errors for b in series)],
        ]  # fmt: skip
        if ops.rejected_total:
            spark_rows.append(["rejected", sparkline([float(b.rejected) for b in series]),
                               max(b.rejected for b in series)])  # fmt: skip
        title = f"Over time ({len(series)} × {bucket}, oldest left)"
        out.append(_table(title, ["series", "", "max per bucket"], spark_rows))
    if len(ops.by_endpoint) > 1:
        rows = [[name, s.requests, s.latency_ms.p50, s.latency_ms.p95, s.error_rate, s.client_error_rate,
                 s.tokens.total] for name, s in ops.by_endpoint.items()]  # fmt: skip
        out.append(_table("By endpoint (served)", ["endpoint", "requests", "p50 ms", "p95 ms", "error rate",
                                                   "4xx rate", "tokens"], rows))  # fmt: skip
    return out


def drift(report: MonitorReport) -> list[Any]:
    section = report.drift
    if section is None:
        return []
    rules = {a.rule.key: a for a in report.alerts}
    rows, styles = [], []
    for m in section.measures:
        alert = rules.get(m.key)
        floor = section.floors.get(m.key)
        extra = m.note or _drift_details(m.key, m.details)
        if floor is not None:
            extra += f"; floor: {floor.n_reference} vs {floor.n_holdout} rows, {floor.repeats} splits"
        when = f"{alert.rule.op} {format_number(alert.rule.limit)}" if alert else "—"
        rows.append([m.key, m.value, None if floor is None else floor.value, when, alert.status if alert else "",
                     m.n_reference, m.n_current, extra])  # fmt: skip
        styles.append("red" if alert and alert.fired else "")
    title = (f"Drift vs '{section.reference}' ({plural(section.inputs, 'input')}, "
             f"{plural(section.outputs, 'output')} in the window)")  # fmt: skip
    columns = ["measure", "value", "noise floor", "alert when", "status", "n ref", "n prod", "details"]
    out: list[Any] = [_table(title, columns, rows, styles=styles)]
    if any(f is not None for f in section.floors.values()):
        out.append(
            "[dim]noise floor: the 95th percentile of the measure between a held-out slice of the reference "
            "(as many rows as production, at most half) and the rest, over seeded splits; a default limit is "
            "max(default, floor + margin).[/dim]"
        )
    notes = [f"{a.rule.key}: {a.rule.note}" for a in report.alerts if a.rule.note and a.rule.key.startswith("drift.")]
    out += [f"[dim]{note}[/dim]" for note in notes]
    if section.note:
        out.append(f"[dim]{section.note}[/dim]")
    return out


def _drift_details(key: str, details: dict[str, Any]) -> str:
    if key.endswith("length"):
        ref, cur = details.get("reference_mean_chars"), details.get("current_mean_chars")
        return f"mean chars {format_number(ref)} → {format_number(cur)}"
    if key.endswith("oov"):
        baseline = format_number(details.get("reference_split_half"))
        return f"split-half baseline {baseline}, vocab {format_number(details.get('vocabulary'))}"
    if key.endswith("embedding"):
        return f"MMD² {format_number(details.get('mmd2'))} (p {format_number(details.get('mmd_p_value'))})"
    return ""


def continuous(report: MonitorReport) -> list[Any]:
    ce = report.continuous
    if ce is None:
        return []
    title = (f"Continuous eval '{ce.suite}': {format_number(ce.sampled)} sampled of "
             f"{plural(ce.eligible, 'eligible request')} ({format_number(ce.answered)} answered, "
             f"sample rate {ce.sample_rate:g})")  # fmt: skip
    rows = [[k, s.get("mean"), s.get("p50"), s.get("p95"), s.get("n")] for k, s in ce.aggregates.items()]
    out: list[Any] = [_table(title, ["metric", "mean", "p50", "p95", "n"], rows)]
    for gate in ce.gates:
        mark = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        out.append(f"  gate {gate.key} {gate.op} {gate.limit:g}: {format_number(gate.actual)} {mark}")
    if ce.skipped:
        out.append("[dim]skipped: " + "; ".join(f"{k} ({v})" for k, v in ce.skipped.items()) + "[/dim]")
    return out


def feedback(report: MonitorReport) -> list[Any]:
    fb = report.feedback
    out: list[Any] = [
        _table(
            "Feedback",
            ["count", "negative", "negative rate", "positive rate", "mean score"],
            [[fb.count, fb.negative, fb.negative_rate, fb.positive_rate, fb.mean_score]],
        )  # fmt: skip
    ]
    if fb.comments:
        rows = [[c["ts"], c["sentiment"], shorten(c["comment"], 100), c["request_id"]]
                for c in fb.comments[:RECENT_COMMENTS]]  # fmt: skip
        out.append(_table("Recent comments", ["time", "sentiment", "comment", "request"], rows))
    return out


def alerts(report: MonitorReport) -> list[Any]:
    if not report.alerts:
        return ["[dim]No alert rules (add monitor.alerts to llmops.yaml).[/dim]"]
    rows = [[a.status, a.rule.key, a.rule.describe(), a.value, a.basis or "", a.rule.source] for a in report.alerts]
    styles = ["bold red" if a.fired else ("dim" if a.value is None else "") for a in report.alerts]
    columns = ["status", "key", "fires when", "value", "rests on", "rule from"]
    out: list[Any] = [_table("Alerts", columns, rows, styles=styles)]
    if report.webhook is not None:
        hook = report.webhook
        out.append(
            f"webhook {hook.url}: "
            + ("delivered" if hook.delivered else f"[yellow]not delivered[/yellow] ({hook.error})")
        )
    return out


def renderable(report: MonitorReport, *, footer: str | None = None) -> Any:
    from rich.console import Group

    parts: list[Any] = [header(report)]
    for section in (operations, drift, continuous, feedback, alerts):
        parts += section(report)
    if footer:
        parts.append(f"[dim]{footer}[/dim]")
    return Group(*parts)


def print_report(report: MonitorReport) -> None:
    from llmops_cli.cli.output import console

    console().print(renderable(report))
