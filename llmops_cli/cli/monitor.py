"""``llmops monitor``: operations, drift, continuous eval, feedback and alerts from the request log."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.monitor.report import MonitorOptions, MonitorReport

DEFAULT_HTML = "monitor-report.html"


class Format(str, Enum):
    table = "table"
    json = "json"
    html = "html"


def monitor_command(
    window: Annotated[
        str | None, typer.Option("--window", "-w", help="Time window ending now (default: monitor.window, else 24h).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Window start: a duration ago (2h), @UNIX_SECONDS or an ISO time (UTC)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Window end (default: now); same forms as --since.")
    ] = None,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="Time-series bucket, e.g. 5m or 1h (default: from the window).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Only requests to this route, e.g. /v1/chat/completions.")
    ] = None,
    fmt: Annotated[
        Format, typer.Option("--format", help="table (terminal), json, or html (a report file).")
    ] = Format.table,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help=f"Where --format html writes (default: {DEFAULT_HTML}).")
    ] = None,
    no_drift: Annotated[bool, typer.Option("--no-drift", help="Skip drift against the reference dataset.")] = False,
    no_embedding: Annotated[
        bool, typer.Option("--no-embedding", help="Skip embedding drift (no embedding model is loaded).")
    ] = False,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip continuous evaluation of sampled requests.")] = False,
    max_samples: Annotated[
        int,
        typer.Option("--max-samples", min=0, help="Texts per side compared for drift, seeded sample (0 = all)."),
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed for drift sampling and cross-validation.")] = 0,
    no_webhook: Annotated[
        bool, typer.Option("--no-webhook", help="Do not POST fired alerts to monitor.webhook.")
    ] = False,
    allow_code: Annotated[
        bool,
        typer.Option(
            "--allow-code",
            help="Allow custom metrics in continuous eval to run project code, and models' trust_remote_code.",
        ),
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Live dashboard, refreshed until Ctrl-C (exit 0).")] = False,
    refresh: Annotated[float, typer.Option("--refresh", min=0.2, help="--watch refresh interval in seconds.")] = 5.0,
    json_out: JsonOpt = False,
) -> None:
    """Latency, throughput, errors and tokens over time; input/output drift against monitor.reference;
    continuous eval of sampled requests; feedback; alerts.

    Figures are for served traffic; requests the gate refused (401/413/429) are counted apart, by
    status. Exits 5 when an alert in monitor.alerts (or a listed drift measure's default, raised
    above the reference's own noise floor) fires, for cron or CI, and POSTs the fired alerts to
    monitor.webhook unless --no-webhook. Alert keys: requests, throughput_rps, peak_rps,
    latency_ms.p50/p95/p99, error_rate (5xx), client_error_rate, tokens.total, rejected,
    rejected_rate, rejected.401/413/429, all.* (every logged request), feedback.negative_rate,
    drift.length/oov/embedding, drift.output.*, eval.METRIC.
    """
    from llmops_cli.errors import QualityGateFailed, UsageError
    from llmops_cli.monitor.report import MonitorOptions
    from llmops_cli.text import plural

    consent_to_code(allow_code)
    if json_out and fmt not in (Format.table, Format.json):
        raise UsageError("--json and --format html do not go together", hint="Pick one output format.")
    chosen = Format.json if json_out else fmt
    if output_file is not None and chosen is not Format.html:
        raise UsageError("--output is for --format html")
    cfg = STATE.config()
    options = MonitorOptions(
        window=window, since=since, until=until, bucket=bucket, endpoint=endpoint, drift=not no_drift,
        embedding=not no_embedding, max_samples=max_samples or None, seed=seed, continuous_eval=not no_eval,
        allow_code=allow_code,
    )  # fmt: skip
    if watch:
        if chosen is not Format.table:
            raise UsageError("--watch shows a terminal dashboard; it does not go with --json or --format html")
        _watch(cfg, options, refresh)
        return
    report = _build(cfg, options, quiet=chosen is Format.json)
    url = str(cfg.monitor.webhook or "")
    if url and not no_webhook and report.fired:
        from llmops_cli.monitor.report import notify

        result = notify(report, url)
        if result is not None and not result.delivered:
            output.warn(f"webhook {url} not delivered: {result.error}")
    _emit(report, chosen, output_file)
    if report.fired:
        messages = [a.message() for a in report.fired]
        raise QualityGateFailed(
            f"{plural(len(messages), 'monitor alert')} fired",
            hint="; ".join(messages[:5]) + (" ..." if len(messages) > 5 else ""),
        )


def _build(cfg: ProjectConfig, options: MonitorOptions, *, quiet: bool, reuse: Any = None) -> MonitorReport:
    from llmops_cli.monitor.report import build_report

    if quiet or STATE.quiet:
        return build_report(cfg, options, reuse=reuse)
    with output.err_console().status("monitor: reading the store", spinner="dots") as status:
        return build_report(cfg, options, lambda stage: status.update(f"monitor: {stage}"), reuse=reuse)


def _emit(report: MonitorReport, chosen: Format, output_file: Path | None) -> None:
    from llmops_cli.cli import monitor_view

    if chosen is Format.json:
        output.print_json(report.to_dict())
    elif chosen is Format.html:
        from llmops_cli.monitor.html_report import write_html

        path = write_html(report, output_file or Path(DEFAULT_HTML))
        monitor_view.print_report(report)
        output.success(f"report written to {path}")
    else:
        monitor_view.print_report(report)


def _watch(cfg: ProjectConfig, options: MonitorOptions, refresh: float) -> None:
    """Redraw every ``refresh`` s; drift and continuous eval are recomputed once a minute at most
    (or every continuous_eval.every), since they embed texts and may call a judge."""
    from rich.live import Live

    from llmops_cli.cli import monitor_view
    from llmops_cli.monitor.windows import parse_duration

    every = cfg.monitor.continuous_eval.every if cfg.monitor.continuous_eval else None
    heavy_every = max(60.0, refresh, parse_duration(every) if every else 0.0)
    report = _build(cfg, options, quiet=False)
    heavy_at = time.monotonic()
    footer = f"refresh {refresh:g}s, drift/eval every {heavy_every:g}s — Ctrl-C to quit"
    try:
        with Live(monitor_view.renderable(report, footer=footer), console=output.console(), auto_refresh=False) as live:
            while True:
                time.sleep(refresh)
                stale = time.monotonic() - heavy_at >= heavy_every
                report = _build(cfg, options, quiet=True, reuse=None if stale else report)
                if stale:
                    heavy_at = time.monotonic()
                live.update(monitor_view.renderable(report, footer=footer), refresh=True)
    except KeyboardInterrupt:
        return
