"""``llmops monitor`` as a library: one call reads the store and returns the whole report.

    report = build_report(config, MonitorOptions(window="24h"))
    report.metrics()        # flat values alerts name: {"latency_ms.p95": 812.0, "drift.embedding": 0.51, ...}
    report.fired            # the alerts that fired (the CLI exits 5 when there is one)
    report.to_dict()        # what --json prints
    notify(report, url)     # POST the fired alerts to a webhook; never raises

Drift compares a seeded sample of at most ``max_samples`` production texts per side (default
1000) with the reference: the statistics are as good on 1000 rows as on 100k, and embedding 100k
texts on a CPU would take longer than the window they describe. Each drift measure also gets the
noise floor of the reference sample itself (:func:`llmops_cli.monitor.drift.noise_floor`), which
lifts the measure's default alert limit above it; the embedding floor is cached with the
reference embeddings.

Operational figures describe served traffic; the gate's refusals (401/413/429) are counted apart
(:mod:`llmops_cli.monitor.windows`). Every alert says how many rows its value rests on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.monitor.alerts import (
    Alert,
    AlertRule,
    WebhookResult,
    alert_rules,
    calibrate_rules,
    check_alert_keys,
    evaluate_alerts,
    post_webhook,
    webhook_payload,
)
from llmops_cli.monitor.continuous import ContinuousEval, run_continuous_eval
from llmops_cli.monitor.drift import (
    DriftMeasure,
    NoiseFloor,
    embedding_drift,
    embedding_noise_floor,
    length_drift,
    length_noise_floor,
    oov_drift,
    oov_noise_floor,
    roc_curve,
)
from llmops_cli.monitor.feedback import FeedbackSummary, summarize_feedback
from llmops_cli.monitor.locations import store_path
from llmops_cli.monitor.ops import OpsStats, ops_stats
from llmops_cli.monitor.query import StoreReader
from llmops_cli.monitor.reference import (
    EmbedderFactory,
    cached_noise_floor,
    default_embedder,
    embed_reference,
    load_reference,
)
from llmops_cli.monitor.windows import TimeWindow, iso, parse_duration, resolve_window

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.monitor import MonitorSpec

MEASURES = ("length", "oov", "embedding")
DEFAULT_MAX_SAMPLES = 1000
MIN_SAMPLES = 10  # per side: below this a drift statistic says more about noise than about drift
ProgressFn = Callable[[str], None]  # a step message: the report's steps have no counts (not llmops_cli.progress)


@dataclass
class MonitorOptions:
    window: str | None = None  # default: monitor.window, else 24h
    since: str | None = None
    until: str | None = None
    bucket: str | None = None  # time-series bucket (default: picked from the window)
    endpoint: str | None = None  # only requests to this route (e.g. /v1/chat/completions)
    drift: bool = True
    embedding: bool = True  # False skips embedding drift (no model load)
    max_samples: int | None = DEFAULT_MAX_SAMPLES  # per side; None = every record
    seed: int = 0
    continuous_eval: bool = True
    allow_code: bool = False
    now: float | None = None
    embedder: EmbedderFactory | None = None  # default: the embedded MiniLM
    judge_provider: Callable[[str], Any] | None = None  # default: the project's models


@dataclass
class DriftSection:
    reference: str | None
    measures: list[DriftMeasure] = field(default_factory=list)
    inputs: int = 0  # production texts in the window (before sampling)
    outputs: int = 0
    note: str | None = None
    plots: dict[str, Any] = field(default_factory=dict)  # raw series for the HTML report; not in to_dict
    floors: dict[str, NoiseFloor | None] = field(default_factory=dict)  # by key; also in each measure's details

    def metrics(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for m in self.measures:
            out[m.key] = m.value
            floor = self.floors.get(m.key)
            out[f"{m.key}.floor"] = None if floor is None else floor.value
            if m.key.endswith("length"):
                out[f"{m.key}.p"] = m.p_value
            if m.key.endswith("embedding"):
                out[f"{m.key}.mmd"] = m.details.get("mmd2")
                out[f"{m.key}.p"] = m.p_value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "note": self.note,
            "measures": [m.to_dict() for m in self.measures],
        }


def known_drift_keys() -> dict[str, None]:
    keys: dict[str, None] = {}
    for side in ("drift", "drift.output"):
        for measure in MEASURES:
            keys[f"{side}.{measure}"] = None
        keys[f"{side}.length.p"] = None
        keys[f"{side}.embedding.mmd"] = None
        keys[f"{side}.embedding.p"] = None
        for measure in MEASURES:
            keys[f"{side}.{measure}.floor"] = None
    return keys


@dataclass
class MonitorReport:
    project: str
    generated: float
    store: str
    store_exists: bool
    window: TimeWindow
    ops: OpsStats
    feedback: FeedbackSummary
    drift: DriftSection | None
    continuous: ContinuousEval | None
    alerts: list[Alert]
    webhook: WebhookResult | None = None

    @property
    def fired(self) -> list[Alert]:
        return [a for a in self.alerts if a.fired]

    def metrics(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {**self.ops.metrics(), **self.feedback.metrics(), **known_drift_keys()}
        if self.drift is not None:
            values.update(self.drift.metrics())
        if self.continuous is not None:
            values.update(self.continuous.metrics_values())
        return values

    def bases(self) -> dict[str, str]:
        """How many rows each value rests on, by metric key."""
        from llmops_cli.text import format_number, plural

        out = self.ops.bases()
        for key in self.feedback.metrics():
            out[key] = plural(self.feedback.count, "feedback row")
        if self.drift is not None:
            for m in self.drift.measures:
                basis = f"{format_number(m.n_reference)} ref / {format_number(m.n_current)} prod"
                floor = self.drift.floors.get(m.key)
                out[m.key] = basis
                for suffix in (".p", ".mmd"):
                    out[m.key + suffix] = basis
                if floor is not None:
                    out[f"{m.key}.floor"] = (
                        f"{floor.n_reference} ref / {floor.n_holdout} held out × {floor.repeats} splits"
                    )
        if self.continuous is not None:
            for key in self.continuous.metrics_values():
                out[key] = plural(self.continuous.sampled, "sampled request")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "generated": iso(self.generated),
            "store": self.store,
            "store_exists": self.store_exists,
            "window": self.window.to_dict(),
            "operations": self.ops.to_dict(),
            "feedback": self.feedback.to_dict(),
            "drift": None if self.drift is None else self.drift.to_dict(),
            "continuous_eval": None if self.continuous is None else self.continuous.to_dict(),
            "alerts": [a.to_dict() for a in self.alerts],
            "fired": len(self.fired),
            "webhook": None if self.webhook is None else self.webhook.to_dict(),
            "metrics": self.metrics(),
        }


def build_report(
    config: ProjectConfig,
    options: MonitorOptions | None = None,
    progress: ProgressFn | None = None,
    *,
    reuse: MonitorReport | None = None,
) -> MonitorReport:
    """Everything ``llmops monitor`` shows, for the window the options (or ``monitor:``) select.

    With ``reuse``, drift and continuous evaluation are taken from that earlier report instead of
    recomputed (the live dashboard refreshes the cheap parts often and the costly ones seldom).
    """
    options = options or MonitorOptions()
    say = progress or (lambda _stage: None)
    monitor = config.monitor
    now = time.time() if options.now is None else options.now
    window = resolve_window(options.window or monitor.window, options.since, options.until, now=now)
    bucket = parse_duration(options.bucket, what="--bucket") if options.bucket else None
    measures = drift_measures(monitor)
    _check_config(monitor)
    rules = alert_rules(monitor, drift_measures=list(monitor.drift))
    path = store_path(config)
    with StoreReader(path) as reader:
        store_exists = reader.exists
        say("operational stats")
        ops = ops_stats(reader.ops_rows(window, options.endpoint), window, bucket)
        feedback = summarize_feedback(reader.feedback(window))
        drift = reuse.drift if reuse is not None else None
        if reuse is None and options.drift and monitor.reference:
            measures = [m for m in measures if options.embedding or m != "embedding"]
            drift = drift_section(config, reader, window, measures, options, say)
        continuous = reuse.continuous if reuse is not None else None
        if reuse is None and options.continuous_eval and monitor.eval_suite:
            say("continuous evaluation")
            continuous = run_continuous_eval(
                config, reader, window, allow_code=options.allow_code, provider_for=options.judge_provider
            )
    report = MonitorReport(
        project=config.name,
        generated=now,
        store=reader.display,
        store_exists=store_exists,
        window=window,
        ops=ops,
        feedback=feedback,
        drift=drift,
        continuous=continuous,
        alerts=[],
    )
    metrics = report.metrics()
    check_alert_keys(rules, metrics)
    rules = calibrate_rules(rules, drift.floors if drift is not None else {})
    report.alerts = evaluate_alerts(rules + _gate_rules(continuous), metrics, report.bases())
    return report


def drift_measures(monitor: MonitorSpec) -> list[str]:
    """``monitor.drift``; when absent, the cheap ones (length, oov) plus any that an alert names."""
    listed = monitor.drift
    chosen = set(listed) if listed else {"length", "oov"}
    for key in monitor.alerts:
        parts = str(key).split(".")
        if parts[0] == "drift" and len(parts) > 1:
            chosen.add(parts[2] if parts[1] == "output" and len(parts) > 2 else parts[1])
    return [m for m in MEASURES if m in chosen]


def _check_config(monitor: MonitorSpec) -> None:
    from llmops_cli.errors import UsageError

    keys = [str(k) for k in monitor.alerts]
    if (any(k.startswith("drift.") for k in keys) or monitor.drift) and not monitor.reference:
        raise UsageError(
            "monitor: drift is configured but monitor.reference is not set",
            hint="Name the dataset production inputs are compared with: `reference: DATASET` under monitor:.",
        )
    if any(k.startswith("eval.") for k in keys) and not monitor.eval_suite:
        raise UsageError(
            "monitor.alerts names eval.* values but monitor.continuous_eval is not set",
            hint="Add `continuous_eval: {suite: SUITE, sample: 20}` under monitor:.",
        )


def _gate_rules(continuous: ContinuousEval | None) -> list[AlertRule]:
    if continuous is None:
        return []
    return [
        AlertRule(f"eval.{g.key}", g.op, g.limit, source=f"eval suite {continuous.suite}", fire_when=False)
        for g in continuous.gates
    ]


def drift_section(
    config: ProjectConfig,
    reader: StoreReader,
    window: TimeWindow,
    measures: list[str],
    options: MonitorOptions,
    say: ProgressFn,
) -> DriftSection:
    """Input drift (and output drift where the reference has answers) for each measure."""
    say("reference dataset")
    reference = load_reference(config, str(config.monitor.reference))
    section = DriftSection(reference.name)
    k, seed = options.max_samples, options.seed
    say("sampling production texts")
    # Served requests only: what unauthenticated traffic sends is not what users ask.
    cur_inputs, section.inputs = reader.sample_texts(
        window, "input", k, seed=seed, endpoint=options.endpoint, served_only=True
    )
    cur_outputs, section.outputs = reader.sample_texts(
        window, "output", k, seed=seed, endpoint=options.endpoint, ok_only=True
    )
    ref_inputs = _sample(reference.inputs, k, seed)
    ref_outputs = _sample(reference.outputs, k, seed)
    embedder = None
    if "embedding" in measures:
        embedder = (options.embedder or default_embedder(config))()
    sides = [("drift", ref_inputs, cur_inputs, "inputs")]
    if ref_outputs:
        sides.append(("drift.output", ref_outputs, cur_outputs, "outputs"))
    else:
        section.note = f"reference '{reference.name}' ({reference.format}) has no answers: output drift not measured"
    for prefix, ref, cur, label in sides:
        for measure in measures:
            say(f"{label} drift: {measure}")
            result, floor = _measure(
                config, prefix, measure, ref, cur, embedder=embedder, seed=seed, plots=section.plots
            )
            if result.value is not None:
                result.details["noise_floor"] = None if floor is None else floor.to_dict()
                section.floors[result.key] = floor
            section.measures.append(result)
    return section


def _measure(
    config: ProjectConfig,
    prefix: str,
    measure: str,
    ref: list[str],
    cur: list[str],
    *,
    embedder: Any,
    seed: int,
    plots: dict[str, Any],
) -> tuple[DriftMeasure, NoiseFloor | None]:
    """The measure and its noise floor on the reference sample (None when too small to split)."""
    key = f"{prefix}.{measure}"
    if len(ref) < MIN_SAMPLES or len(cur) < MIN_SAMPLES:
        side = "reference" if len(ref) < MIN_SAMPLES else "production"
        note = f"too few {side} texts (fewer than {MIN_SAMPLES})"
        return DriftMeasure(key, None, None, len(ref), len(cur), note=note), None
    if measure == "length":
        plots[key] = ([len(t) for t in ref], [len(t) for t in cur])
        return length_drift(ref, cur, key=key), length_noise_floor(ref, len(cur), seed=seed)
    if measure == "oov":
        return oov_drift(ref, cur, seed=seed, key=key), oov_noise_floor(ref, len(cur), seed=seed)
    ref_vectors = embed_reference(config.root, embedder, ref)
    cur_vectors = embedder.embed(cur)
    result, clf = embedding_drift(ref_vectors, cur_vectors, seed=seed, key=key)
    plots[key] = roc_curve(clf.scores, clf.labels)
    floor = cached_noise_floor(
        config.root, embedder, ref, len(cur), seed, lambda: embedding_noise_floor(ref_vectors, len(cur), seed=seed)
    )
    return result, floor


def _sample(texts: list[str], k: int | None, seed: int) -> list[str]:
    import random

    if k is None or len(texts) <= k:
        return list(texts)
    return random.Random(seed).sample(texts, k)


def notify(report: MonitorReport, url: str) -> WebhookResult | None:
    """POST the fired alerts to ``url`` (nothing when none fired); the result is kept on the report."""
    if not report.fired:
        return None
    report.webhook = post_webhook(url, webhook_payload(report.project, report.window.to_dict(), report.alerts))
    return report.webhook
