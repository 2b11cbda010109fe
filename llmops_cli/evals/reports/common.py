"""Small helpers shared by the report writers (eval reports, and the monitor report and its terminal view)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from llmops_cli.evals.results import SuiteResult, Threshold

# Preferred column order for aggregate stats; unknown stats follow alphabetically.
STAT_ORDER = ("mean", "std", "min", "p50", "p90", "p95", "p99", "max", "n")


def as_list(results: SuiteResult | Sequence[SuiteResult]) -> list[SuiteResult]:
    return [results] if isinstance(results, SuiteResult) else list(results)


def stat_columns(result: SuiteResult) -> list[str]:
    present = {s for stats in result.aggregates.values() for s in stats}
    ordered = [s for s in STAT_ORDER if s in present]
    return ordered + sorted(present - set(ordered))


def split_key(key: str) -> tuple[str, str]:
    """``"latency_ms.p95"`` -> ``("latency_ms", "p95")``; a bare metric gates its mean.

    Metric names may contain dots (``length.words``), so only a trailing stat name is split off.
    """
    metric, _, stat = key.rpartition(".")
    if metric and (stat in STAT_ORDER or stat.startswith("p") and stat[1:].isdigit() or stat.startswith("pass@")):
        return metric, stat
    return key, "mean"


def thresholds_for(result: SuiteResult, metric: str) -> list[Threshold]:
    return [t for t in result.thresholds if split_key(t.key)[0] == metric]


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.{digits}g}"
    return str(value)


def fmt_delta(cmp: dict[str, Any] | None) -> str:
    """``+0.031 [-0.010, +0.072]`` for a :func:`llmops_cli.evals.compare.compare` result."""
    if not cmp or not cmp.get("n_paired"):
        return "n/a"
    return f"{cmp['delta_mean']:+.4g} [{cmp['ci_low']:+.4g}, {cmp['ci_high']:+.4g}]"


def baseline_metrics(result: SuiteResult) -> dict[str, dict[str, Any]]:
    return dict((result.baseline or {}).get("metrics") or {})


def shorten(text: str | None, limit: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failed_assertions(case: Any) -> list[str]:
    return [name for name, ok in case.passed.items() if not ok]
