"""The built-in eval metrics, one class per kind, and the loaders custom and json_schema metrics need.

:func:`llmops_cli.evals.metrics.build_metric` picks the class for a :class:`MetricSpec`; see
:mod:`llmops_cli.evals.metrics` for what each kind scores and its range.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmops_cli.errors import UsageError
from llmops_cli.evals import metrics_text
from llmops_cli.evals.metrics import CaseInput, Metric, MetricSpec, Scores, normalize_text, select_field


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


SIMPLE_KINDS: dict[str, type[Metric]] = {
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
