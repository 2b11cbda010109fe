"""Continuous evaluation: a sample of recent production answers scored with an eval suite's metrics.

How ``monitor:`` is read here:

* ``continuous_eval.suite``: the suite whose *reference-free* metrics are applied to production
  answers: length, latency_ms, tokens, not_contains, contains / regex with a ``pattern``,
  json_valid, json_schema, judge (graded without a reference), and custom metrics with
  ``--allow-code``. Metrics that need a reference answer (rouge*, bleu, chrf, exact_match,
  similarity, contains without a pattern) and pairwise are skipped and listed as skipped:
  production requests have no reference answers.
* ``sample_rate``: the fraction of requests eligible for evaluation. Eligibility is a hash of the
  request id, so a request is in or out of the sample for good: repeated runs (cron, ``--watch``)
  score the same requests and a judge is not asked twice about different random picks.
* ``continuous_eval.sample``: at most this many eligible requests, the most recent, are scored
  (default 20). ``continuous_eval.every``: the span of recent traffic they are drawn from (the
  end of the report window back by ``every``; default: the whole window).
* The suite's own thresholds on metrics that were computed apply to the sample too; one that is
  not met raises an alert ``eval.<metric>.<stat>`` (besides any ``eval.*`` rule in ``alerts``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from llmops_cli.monitor.query import LoggedRequest, StoreReader
from llmops_cli.monitor.windows import TimeWindow, parse_duration

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.evals import EvalSuiteSpec
    from llmops_cli.evals.metrics import MetricSpec
    from llmops_cli.evals.thresholds import ThresholdResult

DEFAULT_SAMPLE = 20
_REFERENCE_FREE = frozenset({"length", "latency_ms", "tokens", "not_contains", "regex", "json_valid", "json_schema",
                             "judge"})  # fmt: skip


@dataclass
class ContinuousEval:
    suite: str
    window: TimeWindow
    sample_rate: float
    eligible: int  # answered requests in the span that the sample rate selects
    answered: int  # answered requests in the span
    metrics: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # metric name -> why
    aggregates: dict[str, dict[str, Any]] = field(default_factory=dict)
    gates: list[ThresholdResult] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sampled(self) -> int:
        return len(self.cases)

    def metrics_values(self) -> dict[str, float | None]:
        """``eval.<key>.<stat>`` for every aggregate, and ``eval.<key>`` for its headline stat."""
        from llmops_cli.evals.metrics import default_stat

        out: dict[str, float | None] = {}
        for key, stats in self.aggregates.items():
            for stat, value in stats.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out[f"eval.{key}.{stat}"] = float(value)
            headline = stats.get(default_stat(self.aggregates, key))
            out[f"eval.{key}"] = None if headline is None else float(headline)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "window": self.window.to_dict(),
            "sample_rate": self.sample_rate,
            "answered": self.answered,
            "eligible": self.eligible,
            "sampled": self.sampled,
            "metrics": self.metrics,
            "skipped": self.skipped,
            "aggregates": self.aggregates,
            "gates": [
                {"key": g.key, "op": g.op, "limit": g.limit, "actual": g.actual, "passed": g.passed} for g in self.gates
            ],
            "cases": self.cases,
        }


def in_sample(request_id: str, rate: float) -> bool:
    """Deterministic Bernoulli(rate) on the request id (the same answer on every run)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    bucket = int.from_bytes(hashlib.sha256(request_id.encode("utf-8")).digest()[:8], "big") / 2**64
    return bucket < rate


def reference_free(spec: MetricSpec, *, allow_code: bool) -> str | None:
    """None when ``spec`` can score production answers; otherwise why it is skipped."""
    from llmops_cli.evals.metrics import CUSTOM

    if spec.type in _REFERENCE_FREE:
        return None
    if spec.type in ("contains", "regex") and spec.pattern is not None:
        return None
    if spec.type == CUSTOM or spec.function:
        return None if allow_code else "runs project code (pass --allow-code)"
    if spec.type == "pairwise":
        return "pairwise needs a second target's answers"
    return "needs a reference answer"


def run_continuous_eval(
    config: ProjectConfig,
    reader: StoreReader,
    window: TimeWindow,
    *,
    allow_code: bool = False,
    provider_for: Callable[[str], Any] | None = None,
) -> ContinuousEval | None:
    """Score the sample; None when ``monitor.continuous_eval`` is not configured.

    ``provider_for(model name)`` gives the judge's provider (default: the project's models).
    """
    from llmops_cli.evals.metrics import MetricSpec, aggregate_scores, build_metrics, score_cases
    from llmops_cli.evals.runner import suite_spec

    monitor = config.monitor
    settings = monitor.continuous_eval
    if settings is None or not settings.suite:
        return None
    suite = str(settings.suite)
    spec = suite_spec(config, suite)
    rate = monitor.sample_rate
    span = window
    if settings.every:
        span = TimeWindow(max(window.start, window.end - parse_duration(settings.every, what="every")), window.end)
    answered = reader.finished_requests(span)
    eligible = [rid for rid, _ in answered if in_sample(rid, rate)]
    chosen = eligible[-int(settings.sample or DEFAULT_SAMPLE) :]
    result = ContinuousEval(suite, span, rate, len(eligible), len(answered))

    specs = [MetricSpec.parse(m) for m in spec.metrics]
    rubric = spec.judge_rubric
    if rubric:
        specs = [replace(s, rubric=s.rubric or rubric) if s.type == "judge" else s for s in specs]
    usable = []
    for metric_spec in specs:
        reason = reference_free(metric_spec, allow_code=allow_code)
        if reason is None:
            usable.append(metric_spec)
        else:
            result.skipped[metric_spec.name] = reason
    if not usable or not chosen:
        return result
    metrics = build_metrics(
        usable, root=config.root, config=config, allow_code=allow_code, judge=_judge_factory(config, spec, provider_for)
    )
    requests = reader.logged_requests(chosen)
    items = [_case(r) for r in requests]
    per_case = score_cases(metrics, items)
    result.metrics = [m.name for m in metrics]
    result.aggregates = aggregate_scores(metrics, per_case, items)
    result.cases = [{"id": r.id, "ts": r.ts, "scores": s} for r, s in zip(requests, per_case, strict=True)]
    result.gates = _gates(spec, result.aggregates)
    return result


def _case(request: LoggedRequest) -> Any:
    from llmops_cli.evals.metrics import CaseInput

    generation = {
        "latency_ms": request.latency_ms,
        "prompt_tokens": request.prompt_tokens,
        "completion_tokens": request.completion_tokens,
    }
    case = {"id": request.id, "input": request.input, "question": request.input}
    return CaseInput(request.output, (), case, generation)


def _judge_factory(config: ProjectConfig, spec: EvalSuiteSpec, provider_for: Callable[[str], Any] | None) -> Any:
    from llmops_cli.evals.judge import judge_metric_factory

    def default_provider(model: str) -> Any:
        from llmops_cli.providers.factory import get_provider

        return get_provider(config, model)

    return judge_metric_factory(provider_for or default_provider, spec.judge_model)


def _gates(spec: EvalSuiteSpec, aggregates: dict[str, dict[str, Any]]) -> list[ThresholdResult]:
    """The suite's thresholds that name a computed metric (others belong to skipped metrics)."""
    from llmops_cli.errors import UsageError
    from llmops_cli.evals.thresholds import check_thresholds, resolve_key

    applicable = {}
    for key, text in spec.thresholds.items():
        try:
            resolve_key(key, aggregates)
        except UsageError:
            continue
        applicable[key] = text
    return check_thresholds(aggregates, applicable)
