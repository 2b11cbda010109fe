"""Eval reports: results.json, junit.xml (CI), summary.md (PR comment) and one self-contained report.html."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmops_cli.evals.results import SuiteResult

FORMATS = ("json", "junit", "markdown", "html")


def write_reports(
    results: SuiteResult | Sequence[SuiteResult], out_dir: Path, formats: Sequence[str] = FORMATS
) -> dict[str, Path]:
    """Write the requested reports into ``out_dir``; returns format -> file written."""
    from llmops_cli.errors import UsageError

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError(f"Unknown report format(s): {', '.join(unknown)}.", hint=f"Choose from: {', '.join(FORMATS)}.")
    written: dict[str, Path] = {}
    out_dir = Path(out_dir)
    if "json" in formats:
        from llmops_cli.evals.reports.json_report import write_json

        written["json"] = write_json(results, out_dir / "results.json")
    if "junit" in formats:
        from llmops_cli.evals.reports.junit import write_junit

        written["junit"] = write_junit(results, out_dir / "junit.xml")
    if "markdown" in formats:
        from llmops_cli.evals.reports.markdown import write_markdown

        written["markdown"] = write_markdown(results, out_dir / "summary.md")
    if "html" in formats:
        from llmops_cli.evals.reports.html import write_html

        written["html"] = write_html(results, out_dir / "report.html")
    return written
