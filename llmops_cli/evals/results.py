"""What an eval run produces: one :class:`CaseResult` per (case, sample) and a :class:`SuiteResult`.

Both round-trip through plain JSON (``to_dict`` / ``from_dict``) so ``results.json`` is the single
source every report, the baseline comparison and the artifact registry read from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class CaseResult:
    """One dataset case run once (``sample`` > 0 for repeated samples of the same case)."""

    case_id: str
    inputs: dict[str, Any]
    prediction: str
    reference: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    passed: dict[str, bool] = field(default_factory=dict)  # per case-level assertion
    latency_ms: float | None = None
    tokens: dict[str, int] = field(default_factory=dict)  # prompt / completion
    sample: int = 0
    error: str | None = None
    cached: bool = False
    # "clean" for the dataset's own cases; adversarial ones are "injection", "leakage" or "fuzz:<kind>".
    group: str = "clean"
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the retrieved sources of a chain

    @property
    def ok(self) -> bool:
        """No error and every case-level assertion held."""
        return self.error is None and all(self.passed.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scores"] = {k: _finite_or_none(v) for k, v in self.scores.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        return cls(
            case_id=str(data["case_id"]),
            inputs=dict(data.get("inputs") or {}),
            prediction=str(data.get("prediction") or ""),
            reference=data.get("reference"),
            scores={k: (None if v is None else float(v)) for k, v in (data.get("scores") or {}).items()},
            passed={k: bool(v) for k, v in (data.get("passed") or {}).items()},
            latency_ms=data.get("latency_ms"),
            tokens={k: int(v) for k, v in (data.get("tokens") or {}).items()},
            sample=int(data.get("sample") or 0),
            error=data.get("error"),
            cached=bool(data.get("cached", False)),
            group=str(data.get("group") or "clean"),
            details=dict(data.get("details") or {}),
        )


@dataclass
class Threshold:
    """A suite-level gate such as ``rougeL >= 0.35`` or ``latency_ms.p95 <= 2000``."""

    key: str
    op: str
    limit: float
    actual: float | None
    passed: bool

    def describe(self) -> str:
        actual = "n/a" if self.actual is None else f"{self.actual:.4g}"
        return f"{self.key} {self.op} {self.limit:g} (actual {actual})"


@dataclass
class SuiteResult:
    """Everything one ``llmops eval`` run of one suite produced."""

    suite: str
    target: dict[str, Any]
    dataset_ref: str
    config_hash: str
    versions: dict[str, Any] = field(default_factory=dict)  # libraries, model fingerprints, git sha
    started: str = ""  # ISO 8601, UTC
    seconds: float = 0.0
    cases: list[CaseResult] = field(default_factory=list)
    aggregates: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> stat -> value
    thresholds: list[Threshold] = field(default_factory=list)
    passed: bool = True
    # {"ref": "eval/faq/v2", "metrics": {metric: {delta_mean, ci_low, ci_high, n_paired, baseline_mean}}}
    baseline: dict[str, Any] | None = None
    # Adversarial robustness: fuzz kind -> metric -> {"clean", "fuzzed", "drop"} (means over paired cases).
    robustness: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Runners may hand thresholds over as plain dicts (the results.json shape).
        # Also accepts objects with the same fields (evals.thresholds.ThresholdResult).
        self.thresholds = [_as_threshold(t) for t in self.thresholds]

    @property
    def error_count(self) -> int:
        """Cases the target failed (no prediction, no scores)."""
        return sum(c.error is not None for c in self.cases)

    @property
    def metric_names(self) -> list[str]:
        """Every per-case metric, in first-seen order."""
        seen: dict[str, None] = {}
        for case in self.cases:
            for name in case.scores:
                seen.setdefault(name, None)
        return list(seen)

    def failed_thresholds(self) -> list[Threshold]:
        return [t for t in self.thresholds if not t.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "suite": self.suite,
            "target": self.target,
            "dataset_ref": self.dataset_ref,
            "config_hash": self.config_hash,
            "versions": self.versions,
            "started": self.started,
            "seconds": self.seconds,
            "passed": self.passed,
            "aggregates": {m: {s: _stat_out(v) for s, v in st.items()} for m, st in self.aggregates.items()},
            "thresholds": [asdict(t) for t in self.thresholds],
            "baseline": self.baseline,
            "robustness": self.robustness,
            "cases": [c.to_dict() for c in self.cases],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteResult:
        return cls(
            suite=str(data["suite"]),
            target=dict(data.get("target") or {}),
            dataset_ref=str(data.get("dataset_ref") or ""),
            config_hash=str(data.get("config_hash") or ""),
            versions=dict(data.get("versions") or {}),
            started=str(data.get("started") or ""),
            seconds=float(data.get("seconds") or 0.0),
            cases=[CaseResult.from_dict(c) for c in data.get("cases") or []],
            aggregates={m: {s: _stat_in(v) for s, v in st.items()} for m, st in (data.get("aggregates") or {}).items()},
            thresholds=[
                Threshold(
                    key=str(t["key"]),
                    op=str(t["op"]),
                    limit=float(t["limit"]),
                    actual=None if t.get("actual") is None else float(t["actual"]),
                    passed=bool(t["passed"]),
                )
                for t in data.get("thresholds") or []
            ],
            passed=bool(data.get("passed", True)),
            baseline=data.get("baseline"),
            robustness=dict(data.get("robustness") or {}),
        )


def _as_threshold(t: Any) -> Threshold:
    if isinstance(t, Threshold):
        return t
    if isinstance(t, dict):
        return Threshold(**t)
    return Threshold(key=t.key, op=t.op, limit=t.limit, actual=t.actual, passed=t.passed)


def _stat_out(value: Any) -> Any:
    # Stats are numbers, except a corpus metric's signature (sacrebleu's reproducibility string).
    return value if isinstance(value, str) else _finite_or_none(value)


def _stat_in(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return math.nan if value is None else float(value)


def _finite_or_none(value: float | None) -> float | None:
    # JSON has no NaN/inf; a metric that could not be computed is stored as null.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


# Metrics where a smaller number is better; everything else (rouge, bleu, exact_match...) is higher-better.
LOWER_IS_BETTER = frozenset({"latency_ms", "tokens", "completion_tokens", "prompt_tokens", "toxicity", "error_rate"})


def lower_is_better(metric: str) -> bool:
    return metric.split(".")[0] in LOWER_IS_BETTER


def case_primary_score(case: CaseResult, metric: str | None) -> float:
    """A "goodness" value used to rank cases worst-first: smaller is worse (sign-flipped for latency)."""
    if case.error is not None:
        return -math.inf
    if metric is None:
        values = [v for k, v in case.scores.items() if v is not None and not lower_is_better(k)]
        return min(values) if values else math.inf
    value = case.scores.get(metric)
    if value is None:
        return math.inf
    return -value if lower_is_better(metric) else value


def worst_cases(result: SuiteResult, n: int = 5, metric: str | None = None) -> list[CaseResult]:
    """The ``n`` worst cases: errored first, then failed assertions, then lowest primary score.

    ``metric`` defaults to the first metric of the first threshold, else the first metric seen,
    because that is the number the suite is gated on.
    """
    if metric is None:
        names = result.metric_names
        gated = [t.key.split(".")[0] for t in result.thresholds if t.key.split(".")[0] in names]
        metric = gated[0] if gated else (names[0] if names else None)
    ranked = sorted(
        result.cases,
        key=lambda c: (c.error is None, c.ok, case_primary_score(c, metric), c.case_id, c.sample),
    )
    return ranked[:n]
