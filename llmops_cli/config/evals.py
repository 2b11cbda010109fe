"""``evals:`` suites as typed specs.

Parsed once by :meth:`ProjectConfig.from_dict` from a document that already passed JSON Schema
validation. A suite's metrics stay as written (a name or a mapping): :class:`llmops_cli.evals.metrics.MetricSpec`
parses them when the suite runs, where an unknown metric is reported. The suite's mapping and its
target's are kept for the two places that re-serialise them: the suite's config hash and the target as
recorded in results (and in the output cache's latency keys).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TARGET_KINDS = ("chain", "prompt", "endpoint", "model", "quantized")  # the order a target is recognised in


@dataclass(frozen=True)
class EvalTarget:
    """What a suite runs: a chain, a prompt (with a model and adapter), a model, a quantized model, or
    an endpoint."""

    chain: str | None = None
    prompt: str | None = None
    model: str | None = None
    quantized: str | None = None
    adapter: str | None = None
    endpoint: str | None = None
    timeout_s: float | None = None  # endpoint only
    concurrency: int | None = None  # endpoint only
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def kind(self) -> str | None:
        return next((k for k in TARGET_KINDS if getattr(self, k) is not None), None)

    def as_dict(self) -> dict[str, Any]:
        """The target as written in llmops.yaml (recorded with every result)."""
        return dict(self.raw)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EvalTarget:
        return cls(
            chain=raw.get("chain"),
            prompt=raw.get("prompt"),
            model=raw.get("model"),
            quantized=raw.get("quantized"),
            adapter=raw.get("adapter"),
            endpoint=raw.get("endpoint"),
            timeout_s=None if raw.get("timeout_s") is None else float(raw["timeout_s"]),
            concurrency=None if raw.get("concurrency") is None else int(raw["concurrency"]),
            raw=dict(raw),
        )


@dataclass(frozen=True)
class AdversarialSpec:
    """Probes and variants added to a suite's cases (``adversarial:``)."""

    injection: bool = False
    canary: str | None = None  # leakage.canary
    fuzz: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalSuiteSpec:
    name: str
    target: EvalTarget
    dataset: str
    metrics: tuple[str | Mapping[str, Any], ...]
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    repeat: int = 1
    limit: int | None = None
    seed: int = 0
    judge_model: str | None = None
    judge_rubric: str | None = None
    adversarial: AdversarialSpec = field(default_factory=AdversarialSpec)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def config_hash(self) -> str:
        """sha256 of the suite's mapping as written (sorted keys): a result's ``config_hash``."""
        blob = json.dumps(dict(self.raw), sort_keys=True, default=str)
        return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def parse_eval_suite(name: str, raw: Mapping[str, Any]) -> EvalSuiteSpec:
    judge = raw.get("judge") or {}
    adversarial = raw.get("adversarial") or {}
    return EvalSuiteSpec(
        name=name,
        target=EvalTarget.from_dict(raw["target"]),
        dataset=str(raw["dataset"]),
        metrics=tuple(raw["metrics"]),
        thresholds={str(k): v for k, v in (raw.get("thresholds") or {}).items()},
        repeat=int(raw.get("repeat", 1)),
        limit=None if raw.get("limit") is None else int(raw["limit"]),
        seed=int(raw.get("seed", 0)),
        judge_model=judge.get("model"),
        judge_rubric=judge.get("rubric"),
        adversarial=AdversarialSpec(
            injection=bool(adversarial.get("injection")),
            canary=(adversarial.get("leakage") or {}).get("canary"),
            fuzz=tuple(adversarial.get("fuzz") or ()),
        ),
        raw=dict(raw),
    )


def parse_evals(section: Mapping[str, Any] | None) -> dict[str, EvalSuiteSpec]:
    """The ``evals:`` section, suite name -> spec."""
    return {name: parse_eval_suite(name, raw) for name, raw in (section or {}).items()}
