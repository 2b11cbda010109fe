"""Drift statistics between a reference sample and production traffic (numpy only, seeded).

* ``length``: the two-sample Kolmogorov-Smirnov statistic D of the texts' lengths in characters
  (0 = same distribution, 1 = disjoint), with its asymptotic p-value. KS rather than PSI: it
  needs no binning (PSI changes with the bins chosen and is unstable on a reference of a few
  dozen rows), is bounded, and reads the same for any text length scale.
* ``oov``: the share of production word tokens (lowercased ``\\w+`` runs) that never occur in the
  reference. The report adds the reference's own split-half rate (half its texts against the
  other half's vocabulary) as the baseline a same-distribution sample would score.
* ``embedding``: a domain classifier, as Evidently does: L2-regularized logistic regression on
  the sentence embeddings, trained to tell reference from production, scored by out-of-fold
  ROC AUC under stratified k-fold cross-validation. 0.5 = indistinguishable; 1.0 = fully apart.
  Alongside it, MMD² with an RBF kernel (median-distance bandwidth) and a permutation p-value.

Noise floors (:func:`noise_floor`). Every statistic above reads above its ideal "no drift" value
on two samples of one distribution (a cross-validated AUC on 25 vs 25 rows easily reads 0.6), so
a fixed alert limit can fire on a perfectly healthy window. The floor is measured on the
reference at hand, with production data playing no part: ``repeats`` seeded random splits of the
reference sample into a held-out slice of h = min(production sample, half the reference) rows and
the rest, the statistic computed between the two each time (the held-out slice in production's
place), and its 95th percentile taken. A default alert limit is then max(default, floor +
NOISE_MARGIN) (:func:`llmops_cli.monitor.alerts.calibrate_rules`). When production has more rows
than half the reference the real comparison is less noisy than the split, so the floor errs on the
high side (fewer false alarms, slightly less sensitivity).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)
MMD_MAX = 1000  # rows per side in the MMD kernel matrix (memory and time grow with its square)
# Splits of the reference per noise floor: cheap statistics get many, the classifier (5 fits per
# split) few. The p95 of 20 values is rough but stable to about +-0.01 AUC on 50+ rows.
NULL_REPEATS = {"length": 200, "oov": 200, "embedding": 20}
NULL_QUANTILE = 95.0
NOISE_MARGIN = 0.02  # added to the floor's p95 for a default limit (all three are on a 0..1 scale)
MIN_NULL_ROWS = 5  # per side of a split: below this there is no floor worth the name


@dataclass
class DriftMeasure:
    """One drift statistic; ``key`` is what alerts name (``drift.length``, ``drift.output.oov``)."""

    key: str
    value: float | None
    p_value: float | None = None
    n_reference: int = 0
    n_current: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # why value is None (too few samples, nothing to compare)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "p_value": self.p_value,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "details": self.details,
            "note": self.note,
        }


@dataclass
class NoiseFloor:
    """The ``quantile`` (95th) percentile of a statistic between two slices of the reference."""

    value: float
    repeats: int
    n_reference: int  # rows on the reference side of each split
    n_holdout: int  # rows held out in production's place
    quantile: float = NULL_QUANTILE
    margin: float = NOISE_MARGIN

    @property
    def limit(self) -> float:
        """The lowest alert limit that sits above the floor: ``value + margin``."""
        return self.value + self.margin

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "quantile": self.quantile,
            "margin": self.margin,
            "repeats": self.repeats,
            "n_reference": self.n_reference,
            "n_holdout": self.n_holdout,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseFloor:
        return cls(
            float(data["value"]), int(data["repeats"]), int(data["n_reference"]), int(data["n_holdout"]),
            float(data.get("quantile", NULL_QUANTILE)), float(data.get("margin", NOISE_MARGIN)),
        )  # fmt: skip


def holdout_size(n_reference: int, n_current: int) -> int:
    """Rows held out of the reference in production's place: as many as production, at most half."""
    return min(n_current, n_reference // 2)


def noise_floor(
    statistic: Callable[[Any, Any], float | None], n_reference: int, n_current: int, *, repeats: int, seed: int = 0
) -> NoiseFloor | None:
    """The statistic's noise floor on the reference itself (module docstring): ``statistic(rest,
    held_out)`` gets two disjoint index arrays into the reference sample. None when the reference
    is too small to split into MIN_NULL_ROWS rows a side."""
    import numpy as np

    h = holdout_size(n_reference, n_current)
    if h < MIN_NULL_ROWS or n_reference - h < MIN_NULL_ROWS or repeats < 1:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(repeats):
        order = rng.permutation(n_reference)
        value = statistic(order[h:], order[:h])
        if value is not None:
            values.append(value)
    if not values:
        return None
    return NoiseFloor(float(np.percentile(values, NULL_QUANTILE)), len(values), n_reference - h, h)


def length_noise_floor(reference: Sequence[str], n_current: int, *, seed: int = 0) -> NoiseFloor | None:
    import numpy as np

    lengths = np.asarray([len(t) for t in reference], dtype=float)
    return noise_floor(
        lambda a, b: ks_2samp(lengths[a], lengths[b])[0], len(lengths), n_current,
        repeats=NULL_REPEATS["length"], seed=seed,
    )  # fmt: skip


def oov_noise_floor(reference: Sequence[str], n_current: int, *, seed: int = 0) -> NoiseFloor | None:
    tokens = [words(t) for t in reference]

    def share(a: Any, b: Any) -> float | None:
        vocab: set[str] = set()
        for i in a:
            vocab.update(tokens[i])
        total = sum(len(tokens[i]) for i in b)
        unknown = sum(token not in vocab for i in b for token in tokens[i])
        return unknown / total if total else None

    return noise_floor(share, len(tokens), n_current, repeats=NULL_REPEATS["oov"], seed=seed)


def embedding_noise_floor(reference: Any, n_current: int, *, seed: int = 0) -> NoiseFloor | None:
    import numpy as np

    vectors = np.asarray(reference, dtype=float)
    return noise_floor(
        lambda a, b: domain_classifier_auc(vectors[a], vectors[b], seed=seed).auc, len(vectors), n_current,
        repeats=NULL_REPEATS["embedding"], seed=seed,
    )  # fmt: skip


# --- length: Kolmogorov-Smirnov ---------------------------------------------------------------


def ks_2samp(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sample KS statistic D = max |F_a - F_b| and its asymptotic two-sided p-value."""
    import numpy as np

    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    grid = np.concatenate([x, y])
    # Empirical CDFs evaluated just after every observed value; ties are handled by side="right".
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    return d, kolmogorov_pvalue(d, len(x), len(y))


def kolmogorov_pvalue(d: float, n: int, m: int) -> float:
    """P(D >= d) from the Kolmogorov distribution with Stephens' small-sample correction
    (Numerical Recipes' ``probks``)."""
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return 1.0
    total, sign, previous = 0.0, 1.0, 0.0
    for k in range(1, 101):
        term = sign * 2.0 * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) <= 1e-10 * abs(total) or abs(term) <= 1e-8 * previous:
            return min(1.0, max(0.0, total))
        previous, sign = abs(term), -sign
    return 1.0  # the series did not converge: lam is tiny, the samples agree


def length_drift(reference: Sequence[str], current: Sequence[str], *, key: str = "drift.length") -> DriftMeasure:
    ref_len = [len(t) for t in reference]
    cur_len = [len(t) for t in current]
    d, p = ks_2samp(ref_len, cur_len)
    details = {
        "statistic": "ks",
        "reference_mean_chars": sum(ref_len) / len(ref_len),
        "current_mean_chars": sum(cur_len) / len(cur_len),
    }
    return DriftMeasure(key, d, p, len(ref_len), len(cur_len), details)


# --- out-of-vocabulary share ------------------------------------------------------------------


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def vocabulary(texts: Iterable[str]) -> set[str]:
    vocab: set[str] = set()
    for text in texts:
        vocab.update(words(text))
    return vocab


def oov_share(texts: Iterable[str], vocab: set[str]) -> tuple[float | None, int]:
    """(share of word tokens not in ``vocab``, number of tokens); None when there are no tokens."""
    total = unknown = 0
    for text in texts:
        tokens = words(text)
        total += len(tokens)
        unknown += sum(token not in vocab for token in tokens)
    return (unknown / total if total else None), total


def split_half_oov(texts: Sequence[str], *, seed: int) -> float | None:
    """The OOV share of one random half of ``texts`` against the other half's vocabulary."""
    if len(texts) < 4:
        return None
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    share, _ = oov_share((texts[i] for i in order[half:]), vocabulary(texts[i] for i in order[:half]))
    return share


def oov_drift(
    reference: Sequence[str], current: Sequence[str], *, seed: int = 0, key: str = "drift.oov"
) -> DriftMeasure:
    vocab = vocabulary(reference)
    share, tokens = oov_share(current, vocab)
    details = {"vocabulary": len(vocab), "tokens": tokens, "reference_split_half": split_half_oov(reference, seed=seed)}
    note = None if share is not None else "production texts hold no word tokens"
    return DriftMeasure(key, share, None, len(reference), len(current), details, note)


# --- embeddings: domain classifier AUC and MMD ------------------------------------------------


def roc_auc(scores: Sequence[float] | Any, labels: Sequence[int] | Any) -> float:
    """ROC AUC as the Mann-Whitney U statistic (ties count half)."""
    import numpy as np

    s, y = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: Any) -> Any:
    """1-based ranks, ties sharing their mean rank."""
    import numpy as np

    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        if count > 1:
            ranks[order[start : start + count]] = start + (count + 1) / 2
    return ranks


def roc_curve(scores: Any, labels: Any, points: int = 101) -> tuple[list[float], list[float]]:
    """(false positive rates, true positive rates) at ``points`` score thresholds, for plots."""
    import numpy as np

    s, y = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    cuts = np.quantile(s, np.linspace(1, 0, points))
    tpr = [float((s[y] >= c).mean()) for c in cuts]
    fpr = [float((s[~y] >= c).mean()) for c in cuts]
    return [0.0, *fpr, 1.0], [0.0, *tpr, 1.0]


def fit_logistic(x: Any, y: Any, weights: Any, *, l2: float = 1.0, iterations: int = 25) -> tuple[Any, float]:
    """Weighted, L2-penalized logistic regression by Newton's method (IRLS); the bias is not penalized.

    Minimizes sum_i w_i * logloss_i + l2/2 * ||coef||^2 (scikit-learn's C = 1/l2).
    """
    import numpy as np

    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        z = np.clip(design @ beta, -35, 35)
        p = 1.0 / (1.0 + np.exp(-z))
        grad = design.T @ (weights * (p - y)) + penalty * beta
        # Floor the IRLS weights: on separable data p(1-p) underflows to denormals, which are both
        # useless to the step and two orders of magnitude slower in the BLAS kernels.
        curvature = np.maximum(p * (1 - p), 1e-8)
        hess = (design * (weights * curvature)[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.max(np.abs(step))) < 1e-6:
            break
    return beta[:-1], float(beta[-1])


def stratified_folds(labels: Any, k: int, *, seed: int) -> list[Any]:
    """``k`` disjoint index arrays, each holding about 1/k of every class (seeded shuffle)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        for i, chunk in enumerate(np.array_split(idx, k)):
            folds[i].extend(chunk.tolist())
    return [np.asarray(sorted(f), dtype=int) for f in folds]


@dataclass
class ClassifierDrift:
    auc: float
    folds: int
    scores: Any  # out-of-fold probabilities of "production", reference rows first
    labels: Any  # 0 = reference, 1 = production


def domain_classifier_auc(
    reference: Any, current: Any, *, folds: int = 5, seed: int = 0, l2: float = 1.0
) -> ClassifierDrift:
    """Out-of-fold ROC AUC of a classifier that tells ``current`` rows from ``reference`` rows.

    Classes are weighted to equal total weight, so a 50-row reference against 1000 production
    rows is not won by always answering "production".
    """
    import numpy as np

    x = np.vstack([np.asarray(reference, dtype=float), np.asarray(current, dtype=float)])
    y = np.concatenate([np.zeros(len(reference)), np.ones(len(current))])
    k = max(2, min(folds, len(reference), len(current)))
    class_weight = np.where(y == 1, len(y) / (2 * len(current)), len(y) / (2 * len(reference)))
    scores = np.zeros(len(y))
    for test in stratified_folds(y, k, seed=seed):
        train = np.setdiff1d(np.arange(len(y)), test, assume_unique=True)
        coef, bias = fit_logistic(x[train], y[train], class_weight[train], l2=l2)
        scores[test] = 1.0 / (1.0 + np.exp(-np.clip(x[test] @ coef + bias, -35, 35)))
    return ClassifierDrift(roc_auc(scores, y), k, scores, y)


def null_auc_quantile(n_reference: int, n_current: int, z: float = 1.645) -> float:
    """The AUC a same-distribution pair of samples this size stays under 95% of the time (one-sided),
    from the Mann-Whitney U null variance: the noise floor for reading ``drift.embedding``."""
    n1, n2 = n_reference, n_current
    sd = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12) / (n1 * n2)
    return 0.5 + z * sd


def mmd_rbf(reference: Any, current: Any, *, permutations: int = 100, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD² with an RBF kernel (bandwidth: median pairwise distance) and a permutation
    p-value of the (biased) statistic, computed from one kernel matrix."""
    import numpy as np

    x = np.vstack([np.asarray(reference, dtype=float), np.asarray(current, dtype=float)])
    n, m = len(reference), len(current)
    sq = np.sum(x * x, axis=1)
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    off_diagonal = dist2[np.triu_indices(len(x), k=1)]
    median = float(np.median(off_diagonal)) if off_diagonal.size else 1.0
    kernel = np.exp(-dist2 / max(median, 1e-12))
    kxx, kyy, kxy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    mmd2 = (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean()
    # Biased MMD² = a^T K a with a = +1/n on one side and -1/m on the other; permuting the sides
    # permutes a, so all permutations cost one matrix product.
    rng = np.random.default_rng(seed)
    signs = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    columns = np.column_stack([signs] + [rng.permutation(signs) for _ in range(permutations)])
    stats = np.einsum("ij,ij->j", columns, kernel @ columns)
    p = (1 + int(np.sum(stats[1:] >= stats[0]))) / (permutations + 1)
    return float(mmd2), float(p)


def embedding_drift(
    reference: Any, current: Any, *, seed: int = 0, key: str = "drift.embedding", permutations: int = 100
) -> tuple[DriftMeasure, ClassifierDrift]:
    import numpy as np

    clf = domain_classifier_auc(reference, current, seed=seed)
    # MMD's kernel matrix grows with the square of the sample: cap it (seeded) at MMD_MAX per side.
    rng = np.random.default_rng(seed)
    ref_mmd, cur_mmd = (_cap(np.asarray(v, dtype=float), MMD_MAX, rng) for v in (reference, current))
    mmd2, mmd_p = mmd_rbf(ref_mmd, cur_mmd, permutations=permutations, seed=seed)
    details = {
        "method": "domain_classifier_roc_auc",
        "folds": clf.folds,
        "mmd2": mmd2,
        "mmd_p_value": mmd_p,
    }
    return DriftMeasure(key, clf.auc, mmd_p, len(reference), len(current), details), clf


def _cap(rows: Any, limit: int, rng: Any) -> Any:
    import numpy as np

    return rows if len(rows) <= limit else rows[np.sort(rng.choice(len(rows), limit, replace=False))]
