"""The quality check of ``llmops quantize``: one eval suite on the original and on the quantized model.

The original is the entry's ``model`` with its ``adapter`` (unmerged, full precision); the quantized
run names the quantized model and no adapter (a ``merge: false`` build brings its own). Compared are
the suite's gated metrics where higher is better, at the statistic the threshold uses (``rougeL`` is
its mean, ``bleu`` its corpus score); a suite without such thresholds compares every higher-is-better
metric. ``delta = original - quantized`` in the metric's own units (0.03 rougeL is three points), and
the gate fails when any delta exceeds ``max_quality_drop``, or when no metric could be compared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UnavailableError, UsageError
from llmops_cli.quantize.progress import Progress, silent

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.config.quantized import QuantizedSpec
    from llmops_cli.evals.results import SuiteResult

_TOLERANCE = 1e-9  # a drop equal to the limit passes, whatever the float rounding


@dataclass
class MetricDelta:
    metric: str  # "metric.stat", e.g. rougeL.mean, bleu.corpus
    original: float | None
    quantized: float | None
    delta: float | None  # original - quantized; positive means the quantized model is worse
    passed: bool | None  # None: no limit, or not comparable


@dataclass
class QualityReport:
    suite: str
    max_drop: float | None
    metrics: list[MetricDelta] = field(default_factory=list)
    original_passed: bool | None = None  # the suite's own thresholds on each run
    quantized_passed: bool | None = None
    note: str = ""

    @property
    def compared(self) -> list[MetricDelta]:
        return [m for m in self.metrics if m.delta is not None]

    @property
    def worst_drop(self) -> float | None:
        deltas = [m.delta for m in self.compared if m.delta is not None]
        return max(deltas) if deltas else None

    @property
    def passed(self) -> bool:
        """The gate: no limit always passes; a limit needs one comparable metric and no drop above it."""
        if self.max_drop is None:
            return True
        return bool(self.compared) and all(m.passed for m in self.compared)

    def failures(self) -> list[MetricDelta]:
        return [m for m in self.compared if m.passed is False]

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "max_drop": self.max_drop,
            "passed": self.passed,
            "worst_drop": self.worst_drop,
            "original_passed": self.original_passed,
            "quantized_passed": self.quantized_passed,
            "metrics": [asdict(m) for m in self.metrics],
            "note": self.note,
        }


def compared_metrics(result: SuiteResult) -> list[tuple[str, str]]:
    """(metric, stat) pairs the gate compares: the higher-is-better thresholds, else every such metric."""
    from llmops_cli.evals.metrics import default_stat
    from llmops_cli.evals.results import lower_is_better
    from llmops_cli.evals.thresholds import resolve_key

    pairs: list[tuple[str, str]] = []
    for threshold in result.thresholds:
        try:
            metric, stat = resolve_key(threshold.key, result.aggregates)
        except UsageError:
            continue  # a threshold on a metric this run did not report: nothing to compare
        if not lower_is_better(metric) and (metric, stat) not in pairs:
            pairs.append((metric, stat))
    if pairs:
        return pairs
    return [(m, default_stat(result.aggregates, m)) for m in result.aggregates if not lower_is_better(m)]


def compare_results(original: SuiteResult, quantized: SuiteResult, *, max_drop: float | None) -> QualityReport:
    """The per-metric drop from ``original`` to ``quantized`` and whether it stays within ``max_drop``."""
    report = QualityReport(original.suite, max_drop, original_passed=original.passed, quantized_passed=quantized.passed)
    for metric, stat in compared_metrics(original):
        before = _value(original.aggregates, metric, stat)
        after = _value(quantized.aggregates, metric, stat)
        delta = None if before is None or after is None else before - after
        passed = None if delta is None or max_drop is None else delta <= max_drop + _TOLERANCE
        report.metrics.append(MetricDelta(f"{metric}.{stat}", before, after, delta, passed))
    if not report.metrics:
        report.note = "the suite reports no higher-is-better metric to compare"
    elif not report.compared:
        report.note = "no metric had a value on both runs"
    return report


def run_quality_check(config: ProjectConfig, spec: QuantizedSpec, *, progress: Progress | None = None) -> QualityReport:
    """Run ``spec.check_with`` on the original and the quantized model and compare them.

    The quantized model must be reachable by its name (built and registered, or staged).
    """
    assert spec.check_with is not None
    try:
        from llmops_cli.evals.runner import EvalOptions, ModelOverride, run_suite
    except ImportError as error:
        raise UnavailableError(
            f"The quality check needs llmops' eval runner, which this installation lacks ({error}).",
            hint="Skip the check with --no-check.",
        ) from error
    say = progress or silent
    runs = {
        "original": ModelOverride(model=spec.model, adapter=spec.adapter),
        "quantized": ModelOverride(model=spec.name, adapter=None),
    }
    results = {}
    for which, override in runs.items():
        step = f"eval {spec.check_with} on {override.model}{' + ' + override.adapter if override.adapter else ''}"
        say(step)

        def counted(done: int, total: int, step: str = step) -> None:
            say(step, done, total)

        results[which] = run_suite(config, spec.check_with, EvalOptions(override=override), progress=counted)
    original, quantized = results["original"], results["quantized"]
    return compare_results(original, quantized, max_drop=spec.max_quality_drop)


def _value(aggregates: dict[str, dict[str, Any]], metric: str, stat: str) -> float | None:
    value = aggregates.get(metric, {}).get(stat)
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
