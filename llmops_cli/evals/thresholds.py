"""Aggregate statistics over cases, pass@k, and threshold gates (``rougeL: ">= 0.35"``).

Threshold keys are ``metric`` or ``metric.stat``: ``latency_ms.p95``, ``length.words.mean``. A bare
key compares the metric's headline stat: the corpus score for bleu / chrf, the mean otherwise
(``rougeL`` means ``rougeL.mean``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmops_cli.errors import UsageError

STATS = ("mean", "stderr", "n", "min", "max", "p50", "p95", "corpus")
_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}
_THRESHOLD = re.compile(r"^\s*(>=|<=|==|>|<)\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in [0, 100]."""
    pos = (len(sorted_values) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def aggregate(values: Sequence[float | None]) -> dict[str, Any]:
    """mean, stderr (sample std / sqrt(n); None below 2 values), n, min, max, p50, p95.

    ``None`` values (metric not applicable) are skipped; with none left every stat but n is None.
    """
    data = sorted(float(v) for v in values if v is not None)
    n = len(data)
    if n == 0:
        return {"mean": None, "stderr": None, "n": 0, "min": None, "max": None, "p50": None, "p95": None}
    mean = math.fsum(data) / n
    stderr = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / (n - 1)) / math.sqrt(n) if n > 1 else None
    return {
        "mean": mean,
        "stderr": stderr,
        "n": n,
        "min": data[0],
        "max": data[-1],
        "p50": percentile(data, 50),
        "p95": percentile(data, 95),
    }


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    # The product form of the binomial ratio avoids huge factorials (the paper's numpy version).
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(samples: Sequence[Sequence[float | None]], k: int, *, correct_at: float = 1.0) -> float | None:
    """pass@k averaged over cases; ``samples[i]`` are case i's repeated scores, correct when >= correct_at."""
    per_case = []
    for scores in samples:
        known = [s for s in scores if s is not None]
        if len(known) >= k:
            per_case.append(pass_at_k(len(known), sum(s >= correct_at for s in known), k))
    return math.fsum(per_case) / len(per_case) if per_case else None


@dataclass(frozen=True)
class Threshold:
    key: str  # as written: "rougeL", "latency_ms.p95"
    op: str
    limit: float


@dataclass(frozen=True)
class ThresholdResult:
    key: str  # resolved "metric.stat"
    op: str
    limit: float
    actual: float | None
    passed: bool


def parse_threshold(key: str, text: str) -> Threshold:
    match = _THRESHOLD.match(str(text))
    if not match:
        raise UsageError(
            f"threshold {key}: cannot read {text!r}",
            hint='Write an operator (>=, <=, >, <, ==) and a number, e.g. ">= 0.35".',
        )
    return Threshold(key, match.group(1), float(match.group(2)))


def resolve_key(key: str, aggregates: Mapping[str, Mapping[str, Any]]) -> tuple[str, str]:
    """(result key, stat) for a threshold key, against the metrics the suite reports."""
    from llmops_cli.evals.metrics import default_stat

    if key in aggregates:
        return key, default_stat(aggregates, key)
    metric, _, stat = key.rpartition(".")
    if metric in aggregates:
        if stat not in aggregates[metric] or stat == "signature":
            known = [s for s in aggregates[metric] if s != "signature"]
            raise UsageError(f"threshold {key}: unknown statistic {stat!r}", hint=f"Use one of: {', '.join(known)}.")
        return metric, stat
    raise UsageError(
        f"threshold {key}: no metric {(metric or key)!r} in this suite",
        hint=f"Known metrics: {', '.join(aggregates) or '(none)'}; a key is 'metric' or 'metric.stat'.",
    )


def check_thresholds(
    aggregates: Mapping[str, Mapping[str, Any]], thresholds: Mapping[str, str]
) -> list[ThresholdResult]:
    """Compare each threshold with its aggregate. A metric no case was scored on (``n`` 0: every case
    errored) fails, whatever its stat says: a gate never passes on nothing."""
    results = []
    for key, text in thresholds.items():
        threshold = parse_threshold(key, text)
        metric, stat = resolve_key(key, aggregates)
        actual = aggregates[metric].get(stat)
        scored = aggregates[metric].get("n")
        passed = actual is not None and scored != 0 and _OPS[threshold.op](float(actual), threshold.limit)
        results.append(ThresholdResult(f"{metric}.{stat}", threshold.op, threshold.limit, actual, passed))
    return results
