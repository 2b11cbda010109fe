"""The monitor report as one self-contained HTML file: tables, time-series and drift plots.

Same house style as the eval report (:mod:`llmops_cli.evals.reports.html`): inline CSS, plots as
base64 PNGs drawn on matplotlib's Agg canvas, no scripts and no external URLs. The same split as
the terminal report: operations on served traffic, the gate's refusals (401/413/429) by status.
"""

from __future__ import annotations

import importlib.util
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from llmops_cli.evals.reports.common import fmt
from llmops_cli.evals.reports.html import CSS, figure, png
from llmops_cli.monitor.report import MonitorReport
from llmops_cli.paths import atomic_write_text
from llmops_cli.text import format_number, plural

_COLORS = {"reference": "#656d76", "production": "#0969da", "p50": "#1a7f37", "p95": "#bf8700", "p99": "#cf222e"}


def write_html(report: MonitorReport, path: Path) -> Path:
    atomic_write_text(Path(path), render_html(report))
    return Path(path)


def render_html(report: MonitorReport) -> str:
    fired = report.fired
    verdict = (
        f'<span class="fail">{plural(len(fired), "ALERT", "ALERTS")}</span>'
        if fired
        else '<span class="pass">OK</span>'
    )
    title = f"llmops monitor: {report.project}"
    w = report.window.to_dict()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)} — {verdict}</h1>",
        f'<p class="muted">{escape(str(w["start"]))} → {escape(str(w["end"]))} ({escape(str(w["duration"]))}), '
        f"generated {escape(str(report.to_dict()['generated']))}, store <code>{escape(report.store)}</code></p>",
    ]
    plots = importlib.util.find_spec("matplotlib") is not None
    if not plots:
        parts.append('<p class="muted">Plots need matplotlib: <code>pip install matplotlib</code>.</p>')
    parts += [_alerts_html(report), _operations_html(report, plots), _drift_html(report, plots)]
    parts += [_continuous_html(report), _feedback_html(report), "</body></html>"]
    return "\n".join(p for p in parts if p) + "\n"


def _table(head: list[str], rows: list[list[Any]], bad: list[bool] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(rows):
        cls = " class=bad" if bad and bad[i] else ""
        cells = "".join(
            f'<td class="num">{format_number(v)}</td>' if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{escape(fmt(v))}</td>"
            for v in row
        )  # fmt: skip
        out.append(f"<tr{cls}>{cells}</tr>")
    return "".join(out) + "</table>"


def _images(images: list[tuple[str, str | None]]) -> str:
    tags = [f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">' for alt, data in images if data]
    return '<div class="plots">' + "".join(tags) + "</div>" if tags else ""


def _alerts_html(report: MonitorReport) -> str:
    if not report.alerts:
        return '<h2>Alerts</h2><p class="muted">No alert rules (monitor.alerts in llmops.yaml).</p>'
    rows = [[a.status, a.rule.key, a.rule.describe(), a.value, a.basis or "", a.rule.source, a.rule.note or ""]
            for a in report.alerts]  # fmt: skip
    html = "<h2>Alerts</h2>" + _table(["status", "key", "fires when", "value", "rests on", "rule from", "note"], rows,
                                      [a.fired for a in report.alerts])  # fmt: skip
    if report.webhook is not None:
        hook = report.webhook
        state = "delivered" if hook.delivered else f"NOT delivered ({hook.error})"
        html += f'<p class="muted">Webhook {escape(hook.url)}: {escape(state)}</p>'
    return html


def _operations_html(report: MonitorReport, plots: bool) -> str:
    ops = report.ops
    t, lat = ops.total, ops.total.latency_ms
    res = f"{ops.rates.resolution:g}s"
    head = ["requests", f"req/s ({res})", f"peak req/s ({res})", "p50 ms", "p95 ms", "p99 ms", "error rate",
            "4xx rate", "prompt tokens", "completion tokens"]  # fmt: skip
    row = [t.requests, ops.throughput_rps, ops.peak_rps, lat.p50, lat.p95, lat.p99, t.error_rate,
           t.client_error_rate, t.tokens.prompt, t.tokens.completion]  # fmt: skip
    html = "<h2>Operations (served traffic)</h2>" + _table(head, [row])
    html += (f'<p class="muted">Served: {escape(plural(t.requests, "request"))} (authenticated <code>/v1</code> '
             "requests that reached a handler). Rejected by the gate (401/413/429): "
             f"{escape(format_number(ops.rejected_total))}, left out of latency, errors and rates.</p>")  # fmt: skip
    if ops.rejected_total:
        reasons = {401: "no or wrong API key", 413: "body over the size limit", 429: "busy or rate limited"}
        everything = ops.all.requests
        rows = [[str(status), reasons.get(status, ""), n, n / everything if everything else None]
                for status, n in sorted(ops.rejected.items())]  # fmt: skip
        html += "<h3>Rejected by the gate</h3>" + _table(["status", "reason", "requests", "share of logged"], rows)
    if ops.by_endpoint:
        rows = [[name, s.requests, s.latency_ms.p50, s.latency_ms.p95, s.error_rate, s.tokens.total]
                for name, s in ops.by_endpoint.items()]  # fmt: skip
        html += _table(["endpoint", "requests", "p50 ms", "p95 ms", "error rate", "tokens"], rows)
    if plots and t.requests:
        html += _images([_throughput_png(report), _latency_png(report), _errors_png(report)])
    return html


def _times(report: MonitorReport) -> list[datetime]:
    return [datetime.fromtimestamp(b.start, tz=timezone.utc) for b in report.ops.series]


def _time_axis(ax: Any, report: MonitorReport) -> None:
    import matplotlib.dates as mdates

    ax.set_xlim(*(datetime.fromtimestamp(t, tz=timezone.utc) for t in (report.window.start, report.window.end)))
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


def _throughput_png(report: MonitorReport) -> tuple[str, str | None]:
    fig, ax = figure()
    series = report.ops.series
    width = report.ops.bucket_seconds / 86400 * 0.9  # bar width in days, matplotlib's date unit
    ax.bar(_times(report), [b.rps for b in series], width=width, align="edge", color=_COLORS["production"])
    ax.set_title(f"throughput (bucket {report.to_dict()['operations']['bucket']})")
    ax.set_ylabel("requests / s")
    _time_axis(ax, report)
    return "throughput", png(fig)


def _latency_png(report: MonitorReport) -> tuple[str, str | None]:
    fig, ax = figure()
    times = _times(report)
    for q in ("p50", "p95", "p99"):
        ys = [getattr(b.stats.latency_ms, q) for b in report.ops.series]
        ax.plot(times, [float("nan") if y is None else y for y in ys], marker=".", label=q, color=_COLORS[q])
    ax.set_title("latency")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    _time_axis(ax, report)
    return "latency", png(fig)


def _errors_png(report: MonitorReport) -> tuple[str, str | None]:
    fig, ax = figure()
    rates = [b.stats.error_rate for b in report.ops.series]
    ax.plot(_times(report), [float("nan") if r is None else r for r in rates], marker=".", color=_COLORS["p99"])
    for alert in report.alerts:
        if alert.rule.key == "error_rate":
            ax.axhline(alert.rule.limit, color="#cf222e", linestyle="--", linewidth=1, label=alert.rule.describe())
            ax.legend(fontsize=8)
    ax.set_ylim(bottom=0)
    ax.set_title("error rate (served: 5xx, broken streams)")
    ax.set_ylabel("share of requests")
    _time_axis(ax, report)
    return "error rate", png(fig)


def _drift_html(report: MonitorReport, plots: bool) -> str:
    drift = report.drift
    if drift is None:
        return ""
    html = f"<h2>Drift against <code>{escape(str(drift.reference))}</code></h2>"
    html += (f'<p class="muted">{escape(plural(drift.inputs, "production input"))} and '
             f"{escape(plural(drift.outputs, 'output'))} in the window. Noise floor: the 95th percentile of the "
             "measure between a held-out slice of the reference (as many rows as production, at most half) and "
             "the rest, over seeded splits; a default alert limit is max(default, floor + margin).")  # fmt: skip
    html += f" {escape(drift.note)}</p>" if drift.note else "</p>"
    rules = {a.rule.key: a for a in report.alerts}
    rows, bad = [], []
    for m in drift.measures:
        alert = rules.get(m.key)
        floor = drift.floors.get(m.key)
        basis = "—" if floor is None else f"{floor.n_reference} vs {floor.n_holdout} ref rows × {floor.repeats}"
        rows.append([m.key, m.value, m.p_value, None if floor is None else floor.value, basis, m.n_reference,
                     m.n_current, alert.rule.describe() if alert else "—", (alert.rule.note or "") if alert else "",
                     m.note or _details(m.details)])  # fmt: skip
        bad.append(bool(alert and alert.fired))
    head = ["measure", "value", "p-value", "noise floor", "floor rests on", "n ref", "n prod", "alert when", "limit",
            "details"]  # fmt: skip
    html += _table(head, rows, bad)
    if plots:
        images = []
        for key, data in drift.plots.items():
            images.append(_length_png(key, *data) if key.endswith("length") else _roc_png(key, data, drift, rules))
        html += _images(images)
    return html


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in details.items() if k != "noise_floor")


def _length_png(key: str, ref: list[int], cur: list[int]) -> tuple[str, str | None]:
    fig, ax = figure()
    top = max(max(ref, default=1), max(cur, default=1))
    bins = [top * i / 30 for i in range(31)]
    ax.hist(ref, bins=bins, density=True, alpha=0.55, label=f"reference (n={len(ref)})", color=_COLORS["reference"])
    ax.hist(cur, bins=bins, density=True, alpha=0.55, label=f"production (n={len(cur)})", color=_COLORS["production"])
    ax.set_title(f"{key}: text length")
    ax.set_xlabel("characters")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return f"{key} histogram", png(fig)


def _roc_png(
    key: str, curve: tuple[list[float], list[float]], drift: Any, rules: dict[str, Any]
) -> tuple[str, str | None]:
    measure = next(m for m in drift.measures if m.key == key)
    fig, ax = figure(height=3.2)
    fpr, tpr = curve
    ax.plot(fpr, tpr, color=_COLORS["production"], label=f"AUC {measure.value:.3f}")
    ax.plot([0, 1], [0, 1], color=_COLORS["reference"], linestyle=":", label="no drift (0.5)")
    alert = rules.get(key)
    if alert is not None:
        ax.plot([], [], " ", label=f"alert when {alert.rule.op} {alert.rule.limit:g}")
    ax.set_title(f"{key}: reference vs production classifier")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    return f"{key} ROC", png(fig)


def _continuous_html(report: MonitorReport) -> str:
    ce = report.continuous
    if ce is None:
        return ""
    html = f"<h2>Continuous evaluation (suite <code>{escape(ce.suite)}</code>)</h2>"
    html += (f'<p class="muted">{ce.sampled} sampled of {ce.eligible} eligible ({ce.answered} answered, '
             f"sample rate {ce.sample_rate:g}).</p>")  # fmt: skip
    if ce.aggregates:
        rows = [[k, s.get("mean"), s.get("p50"), s.get("p95"), s.get("n")] for k, s in ce.aggregates.items()]
        html += _table(["metric", "mean", "p50", "p95", "n"], rows)
    if ce.gates:
        rows = [[f"{g.key} {g.op} {g.limit:g}", g.actual, g.passed] for g in ce.gates]
        html += _table(["gate", "actual", "passed"], rows, [not g.passed for g in ce.gates])
    if ce.skipped:
        html += _table(["skipped metric", "why"], [[k, v] for k, v in ce.skipped.items()])
    return html


def _feedback_html(report: MonitorReport) -> str:
    fb = report.feedback
    html = "<h2>Feedback</h2>"
    html += _table(["feedback", "negative", "negative rate", "positive rate", "mean score"],
                   [[fb.count, fb.negative, fb.negative_rate, fb.positive_rate, fb.mean_score]])  # fmt: skip
    if fb.comments:
        rows = [[c["ts"], c["request_id"], c["sentiment"], c["comment"]] for c in fb.comments]
        html += "<h3>Recent comments</h3>" + _table(["time", "request", "sentiment", "comment"], rows)
    return html
