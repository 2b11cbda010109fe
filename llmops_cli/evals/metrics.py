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

import importlib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.errors import UsageError
from llmops_cli.evals import metrics_text
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


def _flag(ok: bool) -> float:
    return 1.0 if ok else 0.0


class RougeMetric(Metric):
    def score(self, item: CaseInput) -> Scores:
        if not item.references:
            return {self.name: None}
        return {self.name: metrics_text.rouge_scores(self.text(item), item.references)[self.kind]}


class SacrebleuMetric(Metric):
    default_stat = "corpus"

    def score(self, item: CaseInput) -> Scores:
        if not item.references:
            return {self.name: None}
        return {self.name: metrics_text.sentence_score(self.kind, self.text(item), item.references)}

    def corpus(self, items: Sequence[CaseInput]) -> dict[str, dict[str, Any]]:
        scored = [item for item in items if item.references]
        if not scored:
            return {self.name: {"corpus": None}}
        value, signature = metrics_text.corpus_score(
            self.kind, [self.text(i) for i in scored], [list(i.references) for i in scored]
        )
        return {self.name: {"corpus": value, "signature": signature}}


class ExactMatch(Metric):
    def score(self, item: CaseInput) -> Scores:
        if not item.references:
            return {self.name: None}
        got = normalize_text(self.text(item))
        return {self.name: _flag(any(got == normalize_text(ref) for ref in item.references))}


class Contains(Metric):
    """Literal, case-sensitive substring test; ``contains`` defaults to the reference(s)."""

    def score(self, item: CaseInput) -> Scores:
        needles = [self.spec.pattern] if self.spec.pattern is not None else list(item.references)
        if not needles:
            return {self.name: None}
        found = any(needle in self.text(item) for needle in needles)
        return {self.name: _flag(found if self.kind == "contains" else not found)}


class Regex(Metric):
    def __init__(self, spec: MetricSpec) -> None:
        super().__init__(spec)
        try:
            self.regex = re.compile(spec.pattern or "")
        except re.error as exc:
            raise UsageError(f"metric {spec.name}: invalid regular expression {spec.pattern!r}: {exc}") from exc

    def score(self, item: CaseInput) -> Scores:
        return {self.name: _flag(self.regex.search(self.text(item)) is not None)}


def _parse_json(value: Any) -> tuple[bool, Any]:
    if not isinstance(value, str):
        return value is not None, value  # a structured chain output is JSON already
    try:
        return True, json.loads(value)
    except ValueError:
        return False, None


class JsonValid(Metric):
    def score(self, item: CaseInput) -> Scores:
        return {self.name: _flag(_parse_json(select_field(item.prediction, self.spec.field))[0])}


class JsonSchema(Metric):
    def __init__(self, spec: MetricSpec, schema: Mapping[str, Any]) -> None:
        super().__init__(spec)
        import jsonschema

        try:
            validator_cls = jsonschema.validators.validator_for(schema)
            validator_cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise UsageError(f"metric {spec.name}: invalid JSON Schema: {exc.message}") from exc
        self.validator = validator_cls(schema)

    def score(self, item: CaseInput) -> Scores:
        ok, data = _parse_json(select_field(item.prediction, self.spec.field))
        return {self.name: _flag(ok and self.validator.is_valid(data))}


class Length(Metric):
    def keys(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}.words")

    def score(self, item: CaseInput) -> Scores:
        text = self.text(item)
        return {self.name: float(len(text)), f"{self.name}.words": float(len(text.split()))}


class Latency(Metric):
    def score(self, item: CaseInput) -> Scores:
        return {self.name: item.generation_value("latency_ms")}


class Tokens(Metric):
    def keys(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}.prompt", f"{self.name}.completion")

    def score(self, item: CaseInput) -> Scores:
        prompt, completion = item.generation_value("prompt_tokens"), item.generation_value("completion_tokens")
        total = None if prompt is None and completion is None else (prompt or 0.0) + (completion or 0.0)
        return {self.name: total, f"{self.name}.prompt": prompt, f"{self.name}.completion": completion}


class Similarity(Metric):
    """Cosine similarity of the prediction's and the first reference's embeddings."""

    def __init__(self, spec: MetricSpec, embedder: Any) -> None:
        super().__init__(spec)
        self.embedder = embedder

    def score(self, item: CaseInput) -> Scores:
        return self.score_batch([item])[0]

    def score_batch(self, items: Sequence[CaseInput]) -> list[Scores]:
        import numpy as np

        pairs = [(i, self.text(item), item.references[0]) for i, item in enumerate(items) if item.references]
        out: list[Scores] = [{self.name: None} for _ in items]
        if not pairs:
            return out
        vectors = np.asarray(self.embedder.embed([p for _, p, _ in pairs] + [r for _, _, r in pairs]), dtype=float)
        left, right = vectors[: len(pairs)], vectors[len(pairs) :]
        norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
        cosine = (left * right).sum(axis=1) / np.where(norms == 0, 1.0, norms)
        for (i, _, _), value in zip(pairs, cosine, strict=True):
            out[i] = {self.name: float(value)}
        return out


class Custom(Metric):
    """``fn(prediction=..., reference=..., case=...) -> float | bool | dict`` from project code.

    A dict gives ``<name>.<key>`` per entry, and ``<name>`` itself from its ``score`` key if any.
    """

    def __init__(self, spec: MetricSpec, fn: Callable[..., Any]) -> None:
        super().__init__(spec)
        self.fn = fn

    def score(self, item: CaseInput) -> Scores:
        reference = item.references[0] if item.references else None
        result = self.fn(prediction=select_field(item.prediction, self.spec.field), reference=reference, case=item.case)
        if isinstance(result, Mapping):
            scores: Scores = {f"{self.name}.{k}": _number(self.name, v) for k, v in result.items() if k != "score"}
            scores[self.name] = _number(self.name, result.get("score"))
            return scores
        return {self.name: _number(self.name, result)}


def _number(name: str, value: Any) -> float | None:
    if value is None or isinstance(value, bool | int | float):
        return None if value is None else float(value)
    raise UsageError(f"custom metric {name} returned {type(value).__name__}, expected a float, bool or dict")


def load_schema(spec: MetricSpec, root: Path | None) -> Mapping[str, Any]:
    """json_schema's schema: inline, or a JSON file relative to the project root."""
    if isinstance(spec.schema, Mapping):
        return spec.schema
    if not spec.schema:
        raise UsageError(f"metric {spec.name}: json_schema needs a 'schema' (an object or a file path)")
    path = (root or Path.cwd()) / spec.schema
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"metric {spec.name}: cannot read JSON Schema {spec.schema}: {exc}") from exc
    if not isinstance(loaded, Mapping):
        raise UsageError(f"metric {spec.name}: {spec.schema} does not hold a JSON object")
    return loaded


def load_custom_function(spec: MetricSpec, root: Path | None, *, allow_code: bool) -> Callable[..., Any]:
    """Import ``module:function`` from the project root, only when the user opted in."""
    target = spec.function or ""
    if not allow_code:
        raise UsageError(f"metric {spec.name} runs project code ({target})", hint="Pass --allow-code to allow it.")
    module_name, _, attr = target.partition(":")
    project = str((root or Path.cwd()).resolve())
    if project not in sys.path:
        sys.path.insert(0, project)  # project modules resolve like 'python -m' from the root
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"metric {spec.name}: cannot import {target}: {exc}") from exc
    if not callable(fn):
        raise UsageError(f"metric {spec.name}: {target} is not callable")
    return fn


_SIMPLE: dict[str, type[Metric]] = {
    **dict.fromkeys(metrics_text.ROUGE_TYPES, RougeMetric),
    **dict.fromkeys(metrics_text.SACREBLEU_METRICS, SacrebleuMetric),
    "exact_match": ExactMatch,
    "contains": Contains,
    "not_contains": Contains,
    "json_valid": JsonValid,
    "length": Length,
    "latency_ms": Latency,
    "tokens": Tokens,
}


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
    kind = spec.type
    metric: Metric
    if kind in _SIMPLE:
        if kind == "not_contains" and spec.pattern is None:
            raise UsageError(f"metric {spec.name}: not_contains needs a 'pattern'")
        metric = _SIMPLE[kind](spec)
    elif kind == "regex":
        if spec.pattern is None:
            raise UsageError(f"metric {spec.name}: regex needs a 'pattern'")
        metric = Regex(spec)
    elif kind == "json_schema":
        metric = JsonSchema(spec, load_schema(spec, root))
    elif kind == "similarity":
        if embedder is None:
            if config is None:
                raise UsageError(f"metric {spec.name}: similarity needs the project config or an embedder")
            from llmops_cli.retrieval import get_embedder

            embedder = get_embedder(config, "all-minilm-l6-v2")
        metric = Similarity(spec, embedder)
    elif kind == CUSTOM or spec.function:
        metric = Custom(spec, load_custom_function(spec, root, allow_code=allow_code))
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
