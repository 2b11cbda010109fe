"""report.html: one self-contained file (inline CSS, plots as base64 PNG), safe to attach to CI runs.

No scripts, no external URLs: the report opens offline and in sandboxed artifact viewers. Plots
are drawn with matplotlib's Agg canvas directly (no pyplot global state, no GUI backend).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from llmops_cli.evals.reports.common import (
    as_list,
    baseline_metrics,
    failed_assertions,
    fmt,
    fmt_delta,
    split_key,
    stat_columns,
    thresholds_for,
)
from llmops_cli.evals.results import SuiteResult, worst_cases
from llmops_cli.paths import atomic_write_text
from llmops_cli.text import plural

MAX_ROWS = 2000  # per-case rows in the page; results.json always has all of them

# The house style of every HTML report (eval, monitor): inline, no external URLs.
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
.pass{color:#1a7f37}.fail{color:#cf222e}.muted{color:#656d76}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fff1f0} .cell{max-width:420px;white-space:pre-wrap;word-break:break-word}
.plots{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start} .plots img{border:1px solid #d0d7de;max-width:100%}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px} dt{font-weight:600}
"""


def render_html(results: SuiteResult | Sequence[SuiteResult]) -> str:
    suites = as_list(results)
    passed = all(s.passed for s in suites)
    verdict = '<span class="pass">PASSED</span>' if passed else '<span class="fail">FAILED</span>'
    title = "llmops eval: " + ", ".join(s.suite for s in suites)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)} — {verdict}</h1>",
    ]
    if importlib.util.find_spec("matplotlib") is None:
        parts.append('<p class="muted">Plots need matplotlib: <code>pip install matplotlib</code>.</p>')
    for result in suites:
        parts.append(_suite_html(result))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(results: SuiteResult | Sequence[SuiteResult], path: Path) -> Path:
    atomic_write_text(path, render_html(results))
    return path


def _suite_html(result: SuiteResult) -> str:
    cls = "pass" if result.passed else "fail"
    out = [f'<h2>Suite <code>{escape(result.suite)}</code> — <span class="{cls}">'
           f"{'passed' if result.passed else 'failed'}</span></h2>"]  # fmt: skip
    out.append(_meta_html(result))
    out.append(_aggregates_html(result))
    images = [_histogram_png(result, m) for m in result.metric_names]
    if result.baseline:
        images.append(_baseline_png(result))
    imgs = [f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">' for alt, data in images if data]
    if imgs:
        out.append('<div class="plots">' + "".join(imgs) + "</div>")
    out.append(_robustness_html(result))
    out.append(_cases_html(result))
    return "\n".join(out)


def _meta_html(result: SuiteResult) -> str:
    items: list[tuple[str, Any]] = [
        ("dataset", result.dataset_ref),
        ("target", ", ".join(f"{k}={v}" for k, v in result.target.items())),
        ("config hash", result.config_hash),
        ("started", result.started),
        ("duration", f"{result.seconds:.1f} s"),
        (
            "cases",
            f"{len(result.cases)} ({sum(c.cached for c in result.cases)} cached, "
            f"{plural(result.error_count, 'error')})",
        ),  # fmt: skip
    ]
    if result.baseline:
        items.append(("baseline", result.baseline.get("ref", "")))
    items += [(f"versions.{k}", v) for k, v in result.versions.items()]
    body = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(_plain(v))}</dd>" for k, v in items)
    return f"<dl>{body}</dl>"


def _aggregates_html(result: SuiteResult) -> str:
    stats = stat_columns(result)
    deltas = baseline_metrics(result)
    head = ["metric", *stats, "thresholds"] + (["Δ vs baseline [95% CI]"] if result.baseline else [])
    rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    metrics = list(dict.fromkeys([*result.aggregates, *(split_key(t.key)[0] for t in result.thresholds)]))
    for metric in metrics:
        gates = thresholds_for(result, metric)
        bad = any(not t.passed for t in gates)
        gate_html = "<br>".join(
            f'<span class="{"pass" if t.passed else "fail"}">{escape(t.describe())}</span>' for t in gates
        )
        cells = [f"<td><code>{escape(metric)}</code></td>"]
        cells += [f'<td class="num">{fmt(result.aggregates.get(metric, {}).get(s))}</td>' for s in stats]
        cells.append(f"<td>{gate_html or '—'}</td>")
        if result.baseline:
            cells.append(f'<td class="num">{escape(fmt_delta(deltas.get(metric)))}</td>')
        rows.append(f"<tr{' class=bad' if bad else ''}>" + "".join(cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _robustness_html(result: SuiteResult) -> str:
    """Fuzzed inputs against the clean ones: mean per metric and the drop (positive = worse)."""
    if not result.robustness:
        return ""
    rows = ["<tr><th>perturbation</th><th>metric</th><th>clean</th><th>fuzzed</th><th>drop</th><th>n</th></tr>"]
    for kind, per_metric in result.robustness.items():
        for metric, d in per_metric.items():
            bad = (d.get("drop") or 0) > 0
            rows.append(
                f"<tr{' class=bad' if bad else ''}><td>{escape(kind)}</td><td><code>{escape(metric)}</code></td>"
                + "".join(f'<td class="num">{fmt(d.get(k))}</td>' for k in ("clean", "fuzzed", "drop", "n"))
                + "</tr>"
            )
    return "<h3>Robustness (fuzzed inputs)</h3><table>" + "".join(rows) + "</table>"


def _cases_html(result: SuiteResult) -> str:
    metrics = result.metric_names
    ordered = worst_cases(result, len(result.cases))
    per_case = (result.baseline or {}).get("per_case") or {}
    gated = [split_key(t.key)[0] for t in result.thresholds]
    delta_metric = next((m for m in gated if m in per_case), next(iter(per_case), None))
    groups = any(c.group != "clean" for c in result.cases)
    head = ["#", "case", *(["group"] if groups else []), "sample", *metrics]
    head += [f"Δ {delta_metric}"] if delta_metric else []
    head += ["failed", "prediction", "reference", "latency ms", "cached"]
    rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for rank, case in enumerate(ordered[:MAX_ROWS], 1):
        failed = case.error or ", ".join(failed_assertions(case))
        delta = per_case.get(delta_metric, {}).get(case.case_id) if delta_metric else None
        cells = [
            f'<td class="num">{rank}</td>',
            f"<td><code>{escape(case.case_id)}</code></td>",
            *([f"<td>{escape(case.group)}</td>"] if groups else []),
            f'<td class="num">{case.sample}</td>',
            *(f'<td class="num">{fmt(case.scores.get(m))}</td>' for m in metrics),
            *([f'<td class="num">{"—" if delta is None else f"{delta:+.3g}"}</td>'] if delta_metric else []),
            f'<td class="cell fail">{escape(failed)}</td>',
            f'<td class="cell">{escape(case.prediction)}</td>',
            f'<td class="cell">{escape(case.reference or "")}</td>',
            f'<td class="num">{fmt(case.latency_ms)}</td>',
            f"<td>{'yes' if case.cached else ''}</td>",
        ]
        rows.append(f"<tr{' class=bad' if not case.ok else ''}>" + "".join(cells) + "</tr>")
    note = ""
    if len(ordered) > MAX_ROWS:
        note = f'<p class="muted">Showing the {MAX_ROWS} worst of {len(ordered)} cases; results.json has all.</p>'
    return "<h3>Cases, worst first</h3>" + note + "<table>" + "".join(rows) + "</table>"


def _histogram_png(result: SuiteResult, metric: str) -> tuple[str, str | None]:
    # The same cases as the aggregates table: the clean ones, except for the probe metrics that
    # exist only on (or cover) the adversarial cases.
    adversarial = metric in ("leakage_resisted", "injection_resisted")
    cases = [c for c in result.cases if adversarial or c.group == "clean"]
    values = [v for c in cases if (v := c.scores.get(metric)) is not None and math.isfinite(v)]
    if not values or importlib.util.find_spec("matplotlib") is None:
        return metric, None
    fig, ax = figure()
    bins = min(30, max(5, len(set(values))))
    ax.hist(values, bins=bins, color="#0969da", alpha=0.85, edgecolor="white")
    mean = sum(values) / len(values)
    ax.axvline(mean, color="#1f2328", linewidth=1.2, label=f"mean {mean:.3g}")
    for t in thresholds_for(result, metric):
        color = "#1a7f37" if t.passed else "#cf222e"
        ax.axvline(t.limit, color=color, linestyle="--", linewidth=1.2, label=f"{t.key} {t.op} {t.limit:g}")
    ax.set_title(f"{metric} (n={len(values)})")
    ax.set_xlabel(metric)
    ax.set_ylabel("cases")
    ax.legend(fontsize=8, loc="best")
    return f"{metric} distribution", png(fig)


def _baseline_png(result: SuiteResult) -> tuple[str, str | None]:
    deltas = {m: d for m, d in baseline_metrics(result).items() if d.get("n_paired")}
    if not deltas or importlib.util.find_spec("matplotlib") is None:
        return "baseline comparison", None
    fig, ax = figure(height=0.6 + 0.45 * len(deltas))
    names = list(deltas)
    means = [deltas[m]["delta_mean"] for m in names]
    lows = [max(0.0, deltas[m]["delta_mean"] - deltas[m]["ci_low"]) for m in names]
    highs = [max(0.0, deltas[m]["ci_high"] - deltas[m]["delta_mean"]) for m in names]
    ys = list(range(len(names)))
    colors = ["#1a7f37" if deltas[m]["ci_low"] > 0 else "#cf222e" if deltas[m]["ci_high"] < 0 else "#656d76"
              for m in names]  # fmt: skip
    ax.errorbar(means, ys, xerr=[lows, highs], fmt="none", ecolor="#1f2328", capsize=4)
    ax.scatter(means, ys, color=colors, zorder=3)
    ax.axvline(0, color="#656d76", linewidth=1)
    ax.set_yticks(ys, names)
    ax.set_xlabel("Δ mean vs baseline (95% bootstrap CI)")
    ax.set_title(f"vs {result.baseline.get('ref', 'baseline') if result.baseline else 'baseline'}")
    return "baseline comparison", png(fig)


def figure(height: float = 3.0) -> tuple[Any, Any]:
    """(figure, axes) on matplotlib's Agg canvas, report-sized (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, max(2.2, height)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def png(fig: Any) -> str:
    """``fig`` as a base64 PNG, for an ``<img src="data:image/png;base64,...">``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    return str(value)
