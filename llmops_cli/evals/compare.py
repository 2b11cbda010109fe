"""Is the new run better than the baseline, or is the difference noise? A paired bootstrap says.

Pairing matters: the same case scored by two versions is strongly correlated, so resampling the
per-case *differences* gives a much tighter (and honest) interval than comparing two means.
"""

from __future__ import annotations

import importlib.util
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from llmops_cli.evals.results import SuiteResult


def compare(
    current_scores: Mapping[str, float | None],
    baseline_scores: Mapping[str, float | None],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired bootstrap of ``mean(current - baseline)`` over the case ids both runs scored.

    Returns ``delta_mean``, ``ci_low``, ``ci_high`` (percentile interval at ``confidence``),
    ``n_paired``, ``current_mean``, ``baseline_mean`` and ``per_case`` (case id -> delta).
    Cases missing from either side, or scored ``None``/NaN, are left out of the pairing.
    """
    per_case: dict[str, float] = {}
    for cid, cur in current_scores.items():
        base = baseline_scores.get(cid)
        if cur is not None and base is not None and math.isfinite(cur) and math.isfinite(base):
            per_case[cid] = float(cur) - float(base)
    ids = sorted(per_case)
    deltas = [per_case[cid] for cid in ids]
    n = len(deltas)
    out: dict[str, Any] = {
        "n_paired": n,
        "per_case": {cid: per_case[cid] for cid in ids},
        "current_mean": _mean([float(current_scores[c]) for c in ids]),  # type: ignore[arg-type]
        "baseline_mean": _mean([float(baseline_scores[c]) for c in ids]),  # type: ignore[arg-type]
        "delta_mean": _mean(deltas),
        "ci_low": math.nan,
        "ci_high": math.nan,
        "confidence": confidence,
        "n_boot": n_boot,
    }
    if n == 0:
        return out
    means = _bootstrap_means(deltas, n_boot, seed)
    alpha = (1.0 - confidence) / 2.0
    out["ci_low"] = _percentile(means, alpha)
    out["ci_high"] = _percentile(means, 1.0 - alpha)
    return out


def compare_suites(
    current: SuiteResult, baseline: SuiteResult, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """:func:`compare` for every metric both suites scored (repeated samples averaged per case)."""
    cur, base = per_case_means(current), per_case_means(baseline)
    return {
        metric: compare(cur[metric], base[metric], n_boot=n_boot, seed=seed)
        for metric in current.metric_names
        if metric in base
    }


def per_case_means(result: SuiteResult) -> dict[str, dict[str, float]]:
    """metric -> case id -> mean score over that case's samples (unscored samples skipped)."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for case in result.cases:
        for metric, value in case.scores.items():
            if _finite(value):
                sums[metric][case.case_id].append(float(value))  # type: ignore[arg-type]
    return {m: {cid: _mean(vals) for cid, vals in by_case.items()} for m, by_case in sums.items()}


def _bootstrap_means(deltas: Sequence[float], n_boot: int, seed: int) -> list[float]:
    if importlib.util.find_spec("numpy") is not None:
        return _bootstrap_means_numpy(deltas, n_boot, seed)
    return _bootstrap_means_python(deltas, n_boot, seed)


def _bootstrap_means_numpy(deltas: Sequence[float], n_boot: int, seed: int) -> list[float]:
    import numpy as np

    arr = np.asarray(deltas, dtype=float)
    rng = np.random.default_rng(seed)
    # Chunked so 10k resamples of 10k cases do not build a 100M-element index matrix at once.
    chunk = max(1, 2_000_000 // max(1, len(arr)))
    means: list[float] = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        idx = rng.integers(0, len(arr), size=(size, len(arr)))
        means.extend(arr[idx].mean(axis=1).tolist())
    return means


def _bootstrap_means_python(deltas: Sequence[float], n_boot: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    n = len(deltas)
    return [sum(rng.choices(deltas, k=n)) / n for _ in range(n_boot)]


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method), without needing numpy."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
