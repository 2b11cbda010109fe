"""Eval metrics: parse what ``metrics:`` declares, score one case, aggregate over a suite.

A metric scores one case (``CaseInput``: the prediction, its references, the dataset row and the
generation's latency / token counts) to ``{result key: float | None}``; ``None`` means "does not
apply" (no reference, no latency recorded) and is left out of the aggregate. Most metrics give one
key, their ``name``; ``length`` also gives ``<name>.words`` and ``tokens`` gives
``<name>.prompt`` / ``<name>.completion``.

Ranges: rouge*, exact_match, contains, not_contains, regex, json_valid, json_schema in [0, 1]
(the last five are 1.0 pass / 0.0 fail); bleu, chrf in [0, 100] (sacrebleu's scale); similarity
in [-1, 1] (cosine); length, latency_ms, tokens unbounded counts / milliseconds; custom metrics
whatever the function returns (bool -> 1.0 / 0.0).

    metrics = build_metrics([MetricSpec.parse(m) for m in suite["metrics"]], root=root)
    per_case = score_cases(metrics, inputs)
    aggregates = aggregate_scores(metrics, per_case, inputs)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.errors import UsageError
from llmops_cli.evals.thresholds import aggregate

Scores = dict[str, float | None]

BUILTIN_METRICS = (
    "rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "contains", "not_contains", "regex",
    "json_valid", "json_schema", "length", "latency_ms", "tokens", "similarity",
)  # fmt: skip
RUNNER_METRICS = ("judge", "pairwise")  # need a provider: they come with the eval runner
CUSTOM = "custom"
_OPTION_KEYS = ("type", "name", "field", "pattern", "schema", "model", "rubric", "against", "function")


@dataclass(frozen=True)
class MetricSpec:
    """One entry of an eval suite's ``metrics:`` list (a string id or an object)."""

    type: str
    name: str
    field: str | None = None
    pattern: str | None = None
    schema: dict[str, Any] | str | None = None
    model: str | None = None
    rubric: str | None = None
    against: str | None = None
    function: str | None = None  # "module:function" for custom metrics

    @classmethod
    def parse(cls, item: str | Mapping[str, Any]) -> MetricSpec:
        raw: dict[str, Any] = {"type": item} if isinstance(item, str) else dict(item)
        unknown = sorted(set(raw) - set(_OPTION_KEYS))
        if unknown or not isinstance(raw.get("type"), str) or not raw["type"]:
            raise UsageError(
                f"invalid metric {item!r}" + (f": unknown keys {', '.join(unknown)}" if unknown else ""),
                hint=f"A metric is an id ({', '.join(BUILTIN_METRICS)}, 'module:function') or an object "
                f"with 'type' and options {', '.join(_OPTION_KEYS[1:])}.",
            )
        kind = raw["type"]
        if ":" in kind:  # 'module:function' written as the id
            raw.setdefault("function", kind)
            kind = raw["type"] = CUSTOM
        # A custom metric is reported under its function's name: a dotted module path would read
        # as 'metric.stat' in threshold keys.
        default_name = raw["function"].rsplit(":", 1)[-1] if kind == CUSTOM and raw.get("function") else kind
        raw.setdefault("name", default_name)
        return cls(**raw)


@dataclass
class CaseInput:
    """What one case gives the metrics. ``generation`` holds latency_ms / prompt_tokens /
    completion_tokens (a ``GenerationResult`` or a mapping with those keys)."""

    prediction: Any
    references: Sequence[str] = ()
    case: Mapping[str, Any] = field(default_factory=dict)
    generation: Any = None

    def generation_value(self, key: str) -> float | None:
        gen = self.generation
        value = gen.get(key) if isinstance(gen, Mapping) else getattr(gen, key, None)
        return None if value is None else float(value)


class Metric:
    """Base: subclasses set ``kind`` and implement ``score``; ``score_batch`` may batch work."""

    kind = ""
    default_stat = "mean"  # the aggregate a bare threshold key ('rougeL') compares

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self.name = spec.name

    def keys(self) -> tuple[str, ...]:
        return (self.name,)

    def text(self, item: CaseInput) -> str:
        return output_text(select_field(item.prediction, self.spec.field))

    def score(self, item: CaseInput) -> Scores:
        raise NotImplementedError

    def score_batch(self, items: Sequence[CaseInput]) -> list[Scores]:
        return [self.score(item) for item in items]

    def corpus(self, items: Sequence[CaseInput]) -> dict[str, dict[str, Any]]:
        """Corpus-level extras per result key, merged into the aggregates (bleu, chrf)."""
        return {}


def select_field(output: Any, name: str | None) -> Any:
    """The ``field`` a metric reads: a key of a mapping output, or of a JSON-object string."""
    if name is None:
        return output
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError:
            return None
    return output.get(name) if isinstance(output, Mapping) else None


def output_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_TRAILING_PUNCT = re.compile(r"[\s.,;:!?]+$")


def normalize_text(text: str) -> str:
    """exact_match's normalization: lowercase, collapse whitespace, strip, drop trailing punctuation."""
    return _TRAILING_PUNCT.sub("", " ".join(text.lower().split()))


def build_metric(
    spec: MetricSpec,
    *,
    root: Path | None = None,
    config: Any = None,
    embedder: Any = None,
    allow_code: bool = False,
    judge: Callable[[MetricSpec], Metric] | None = None,
) -> Metric:
    """The scorer for ``spec``. ``config`` (a ProjectConfig) is needed for ``similarity`` unless an
    ``embedder`` is given; ``allow_code`` opts in to running project code for custom metrics;
    ``judge`` builds the model-graded metrics (judge, pairwise: the eval runner passes it)."""
    from llmops_cli.evals import metric_kinds as kinds  # the kinds subclass Metric, defined above

    kind = spec.type
    metric: Metric
    if kind in kinds.SIMPLE_KINDS:
        if kind == "not_contains" and spec.pattern is None:
            raise UsageError(f"metric {spec.name}: not_contains needs a 'pattern'")
        metric = kinds.SIMPLE_KINDS[kind](spec)
    elif kind == "regex":
        if spec.pattern is None:
            raise UsageError(f"metric {spec.name}: regex needs a 'pattern'")
        metric = kinds.Regex(spec)
    elif kind == "json_schema":
        metric = kinds.JsonSchema(spec, kinds.load_schema(spec, root))
    elif kind == "similarity":
        if embedder is None:
            if config is None:
                raise UsageError(f"metric {spec.name}: similarity needs the project config or an embedder")
            from llmops_cli.retrieval import get_embedder

            embedder = get_embedder(config, "all-minilm-l6-v2")
        metric = kinds.Similarity(spec, embedder)
    elif kind == CUSTOM or spec.function:
        metric = kinds.Custom(spec, kinds.load_custom_function(spec, root, allow_code=allow_code))
    elif kind in RUNNER_METRICS:
        if judge is None:
            raise UsageError(
                f"metric {spec.name}: '{kind}' needs a judge model, which only 'llmops eval' provides",
                hint="Run it through 'llmops eval' (or pass judge= to build_metric).",
            )
        metric = judge(spec)
    else:
        raise UsageError(
            f"unknown metric {kind!r}",
            hint=f"Known metrics: {', '.join(BUILTIN_METRICS + RUNNER_METRICS)}, or 'module:function'.",
        )
    metric.kind = kind
    return metric


def build_metrics(specs: Sequence[MetricSpec], **kwargs: Any) -> list[Metric]:
    """Scorers for a suite's metrics; two metrics reporting the same result key is an error."""
    metrics = [build_metric(spec, **kwargs) for spec in specs]
    seen: set[str] = set()
    for metric in metrics:
        clash = seen.intersection(metric.keys())
        if clash:
            raise UsageError(f"two metrics report {sorted(clash)[0]!r}", hint="Give one of them a distinct 'name'.")
        seen.update(metric.keys())
    return metrics


def score_cases(metrics: Sequence[Metric], items: Sequence[CaseInput]) -> list[Scores]:
    """Every metric on every case: one ``{result key: value}`` dict per case."""
    per_case: list[Scores] = [{} for _ in items]
    for metric in metrics:
        for row, scores in zip(per_case, metric.score_batch(items), strict=True):
            row.update(scores)
    return per_case


def aggregate_scores(
    metrics: Sequence[Metric], per_case: Sequence[Mapping[str, float | None]], items: Sequence[CaseInput]
) -> dict[str, dict[str, Any]]:
    """Per result key: mean, stderr, n, min, max, p50, p95 (+ corpus and signature for bleu/chrf)."""
    out: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        keys = list(metric.keys()) + sorted({k for row in per_case for k in row if k.startswith(metric.name + ".")})
        for key in dict.fromkeys(keys):
            out[key] = aggregate([row.get(key) for row in per_case])
        for key, extra in metric.corpus(items).items():
            out[key].update(extra)
    return out


def default_stat(aggregates: Mapping[str, Mapping[str, Any]], key: str) -> str:
    """The stat a bare key compares: the corpus score where there is one (bleu, chrf), else the mean."""
    return "corpus" if "corpus" in aggregates.get(key, {}) else "mean"


__all__ = [
    "BUILTIN_METRICS",
    "CaseInput",
    "Metric",
    "MetricSpec",
    "Scores",
    "aggregate_scores",
    "build_metric",
    "build_metrics",
    "default_stat",
    "normalize_text",
    "score_cases",
]
