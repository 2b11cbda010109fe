"""Evaluation: metrics that score cases, their aggregates, and threshold gates."""

from llmops_cli.evals.metrics import (
    BUILTIN_METRICS,
    CaseInput,
    Metric,
    MetricSpec,
    aggregate_scores,
    build_metric,
    build_metrics,
    normalize_text,
    score_cases,
)
from llmops_cli.evals.thresholds import (
    Threshold,
    ThresholdResult,
    aggregate,
    check_thresholds,
    mean_pass_at_k,
    parse_threshold,
    pass_at_k,
)

__all__ = [
    "BUILTIN_METRICS",
    "CaseInput",
    "Metric",
    "MetricSpec",
    "Threshold",
    "ThresholdResult",
    "aggregate",
    "aggregate_scores",
    "build_metric",
    "build_metrics",
    "check_thresholds",
    "mean_pass_at_k",
    "normalize_text",
    "parse_threshold",
    "pass_at_k",
    "score_cases",
]
