"""Rich rendering for ``llmops monitor``: the report's tables, and the same as a live dashboard."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llmops_cli.evals.reports._common import fmt, shorten

if TYPE_CHECKING:
    from llmops_cli.monitor.report import MonitorReport

_SPARKS = "▁▂▃▄▅▆▇█"
RECENT_COMMENTS = 5


def sparkline(values: list[float | None]) -> str:
    """One character per bucket; blank where there is no value."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return ""
    top = max(known) or 1.0
    return "".join(
        " "
        if v is None or not math.isfinite(v)
        else _SPARKS[min(len(_SPARKS) - 1, int(v / top * (len(_SPARKS) - 1) + 0.5))]
        for v in values
    )


def _table(title: str | None, columns: list[str], rows: list[list[Any]], *, styles: list[str] | None = None) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for i, row in enumerate(rows):
        table.add_row(*(escape(fmt(v)) if not isinstance(v, str) else escape(v) for v in row),
                      style=styles[i] if styles else None)  # fmt: skip
    return table


def header(report: MonitorReport) -> str:
    from rich.markup import escape

    w = report.window.to_dict()
    store = "" if report.store_exists else " [yellow](no requests logged yet)[/yellow]"
    return (
        f"[bold]{escape(report.project)}[/bold]  {w['start']} → {w['end']} ({w['duration']})  "
        f"store {escape(report.store)}{store}"
    )


def operations(report: MonitorReport) -> list[Any]:
    ops = report.ops
    t, lat = ops.total, ops.total.latency_ms
    head = ["requests", "req/s", "peak req/s", "p50 ms", "p95 ms", "p99 ms", "error rate", "4xx rate",
            "prompt tok", "completion tok", "tok/request"]  # fmt: skip
    per_request = None if not t.requests else t.tokens.total / t.requests
    row = [t.requests, ops.throughput_rps, ops.peak_rps, lat.p50, lat.p95, lat.p99, t.error_rate,
           t.client_error_rate, t.tokens.prompt, t.tokens.completion, per_request]  # fmt: skip
    out = [_table("Operations", head, [row])]
    if t.requests:
        series = ops.series
        bucket = report.to_dict()["operations"]["bucket"]
        spark_rows = [
            ["requests", sparkline([float(b.stats.requests) for b in series]), max(b.stats.requests for b in series)],
            ["p95 ms", sparkline([b.stats.latency_ms.p95 for b in series]),
             max((b.stats.latency_ms.p95 or 0.0 for b in series), default=0.0)],
            ["errors", sparkline([float(b.stats.errors) for b in series]), max(b.stats.errors for b in series)],
        ]  # fmt: skip
        out.append(_table(f"Over time ({len(series)} × {bucket}, oldest left)", ["series", "", "max"], spark_rows))
    if len(ops.by_endpoint) > 1:
        rows = [[name, s.requests, s.latency_ms.p50, s.latency_ms.p95, s.error_rate, s.client_error_rate,
                 s.tokens.total] for name, s in ops.by_endpoint.items()]  # fmt: skip
        out.append(_table("By endpoint", ["endpoint", "requests", "p50 ms", "p95 ms", "error rate", "4xx rate",
                                          "tokens"], rows))  # fmt: skip
    return out


def drift(report: MonitorReport) -> list[Any]:
    section = report.drift
    if section is None:
        return []
    rules = {a.rule.key: a for a in report.alerts}
    rows, styles = [], []
    for m in section.measures:
        alert = rules.get(m.key)
        extra = m.note or _drift_details(m.key, m.details)
        rows.append([m.key, m.value, m.p_value, m.n_reference, m.n_current,
                     alert.rule.describe() if alert else "—", alert.status if alert else "", extra])  # fmt: skip
        styles.append("red" if alert and alert.fired else "")
    title = f"Drift vs '{section.reference}' ({section.inputs} inputs, {section.outputs} outputs in window)"
    out = [_table(title, ["measure", "value", "p", "n ref", "n prod", "alert when", "status", "details"], rows,
                  styles=styles)]  # fmt: skip
    if section.note:
        out.append(f"[dim]{section.note}[/dim]")
    return out


def _drift_details(key: str, details: dict[str, Any]) -> str:
    if key.endswith("length"):
        return f"mean chars {fmt(details.get('reference_mean_chars'))} → {fmt(details.get('current_mean_chars'))}"
    if key.endswith("oov"):
        return (
            f"same-distribution baseline {fmt(details.get('reference_split_half'))}, vocab {details.get('vocabulary')}"
        )
    if key.endswith("embedding"):
        return f"noise floor AUC {fmt(details.get('null_auc_p95'))}, MMD² {fmt(details.get('mmd2'))}"
    return ""


def continuous(report: MonitorReport) -> list[Any]:
    ce = report.continuous
    if ce is None:
        return []
    title = (f"Continuous eval '{ce.suite}': {ce.sampled} sampled of {ce.eligible} eligible "
             f"({ce.answered} answered, sample rate {ce.sample_rate:g})")  # fmt: skip
    rows = [[k, s.get("mean"), s.get("p50"), s.get("p95"), s.get("n")] for k, s in ce.aggregates.items()]
    out: list[Any] = [_table(title, ["metric", "mean", "p50", "p95", "n"], rows)]
    for gate in ce.gates:
        mark = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        out.append(f"  gate {gate.key} {gate.op} {gate.limit:g}: {fmt(gate.actual)} {mark}")
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
    rows = [[a.status, a.rule.key, a.rule.describe(), a.value, a.rule.source] for a in report.alerts]
    styles = ["bold red" if a.fired else ("dim" if a.value is None else "") for a in report.alerts]
    out: list[Any] = [_table("Alerts", ["status", "key", "fires when", "value", "rule from"], rows, styles=styles)]
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
