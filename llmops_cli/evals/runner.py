"""Run an eval suite: cases from its dataset through its target, scored, aggregated and gated.

    result = run_suite(config, "support-quality")                      # SuiteResult
    result = run_suite(config, "support-quality", EvalOptions(override=ModelOverride("base-4bit")))

How a run goes:

1. The dataset's rows become cases (:mod:`llmops_cli.evals.cases`), plus adversarial probes and
   fuzzed variants when the suite asks for them.
2. Every (case, sample) runs in a pool of worker threads, each executing the target exactly as
   ``llmops chain run`` would (a chain, a prompt, a bare model, or an HTTP endpoint). Their model
   calls meet in a :class:`~llmops_cli.providers.batching.BatchingProvider`, so the model sees
   batches even though each worker holds one prompt; before that, the output cache answers every
   call it has seen with the same model fingerprint, adapter, rendered prompt and parameters.
3. The metrics score every case; aggregates, pass@k, robustness drops and thresholds follow.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from llmops_cli.config import ProjectConfig
from llmops_cli.config.evals import EvalSuiteSpec
from llmops_cli.errors import LlmopsError, UsageError
from llmops_cli.evals.cases import CLEAN, EvalCase, adversarial_cases, cases_from_rows
from llmops_cli.evals.metrics import CaseInput, Metric, MetricSpec, aggregate_scores, build_metrics, score_cases
from llmops_cli.evals.results import CaseResult, SuiteResult
from llmops_cli.evals.runtime import CaseOutput, EvalOptions, EvalRuntime, ModelOverride
from llmops_cli.evals.targets import Target, build_target, target_for_name
from llmops_cli.evals.thresholds import aggregate, check_thresholds, mean_pass_at_k, parse_threshold

# (done, total) after each case; called from worker threads.
ProgressFn = Callable[[int, int], None]  # (cases done, in all): one phase, so not llmops_cli.progress's shape
INJECTION_METRIC = "injection_resisted"
LEAKAGE_METRIC = "leakage_resisted"
FLAG_KINDS = frozenset({"exact_match", "contains", "not_contains", "regex", "json_valid", "json_schema"})


# --- the run ---------------------------------------------------------------------------------------


def suite_spec(config: ProjectConfig, suite: str) -> EvalSuiteSpec:
    if suite not in config.evals:
        import difflib

        close = difflib.get_close_matches(suite, list(config.evals), n=1)
        hint = f"Did you mean '{close[0]}'?" if close else f"Declared suites: {', '.join(config.evals) or 'none'}."
        raise UsageError(f"no eval suite named '{suite}' in {config.path.name} (evals:)", hint=hint)
    return config.evals[suite]


def load_cases(config: ProjectConfig, spec: EvalSuiteSpec, options: EvalOptions, seed: int) -> list[EvalCase]:
    from llmops_cli.data import load_rows

    dataset = spec.dataset
    rows = load_rows(config, dataset, training=False)
    cases = cases_from_rows(rows, config.datasets[dataset].format)
    limit = options.limit if options.limit is not None else spec.limit
    if limit is not None:
        cases = cases[: int(limit)]
    if not cases:
        raise UsageError(f"dataset '{dataset}' has no rows to evaluate")
    if options.adversarial:
        cases = cases + adversarial_cases(cases, spec.adversarial, seed=seed)
    return cases


def run_suite(
    config: ProjectConfig, suite: str, options: EvalOptions | None = None, progress: ProgressFn | None = None
) -> SuiteResult:
    """Run ``suite`` and return its result (thresholds checked; nothing written)."""
    options = options or EvalOptions()
    spec = suite_spec(config, suite)
    for key, text in spec.thresholds.items():
        parse_threshold(key, text)  # a typo in a gate fails before minutes of generation
    repeat = options.repeat or spec.repeat
    seed = options.seed if options.seed is not None else spec.seed
    canary = spec.adversarial.canary if options.adversarial else None
    cases = load_cases(config, spec, options, seed)
    started = _dt.datetime.now(_dt.timezone.utc)
    clock = time.perf_counter()

    from llmops_cli.evals.cache import OutputCache

    cache = OutputCache(config.root)
    runtime = EvalRuntime(config, options=options, cache=cache, canary=canary, seed=seed)
    try:
        metrics = _metrics(config, spec, runtime, options)
        _check_threshold_keys(spec, metrics, canary=bool(canary), injection=_has_injection(spec, options))
        target = build_target(runtime, spec.target)
        outputs = _run_cases(runtime, target, cases, repeat, progress)
        others = _pairwise_others(config, spec, metrics, runtime, cases)
        results = _score(metrics, cases, outputs, repeat, canary, others)
        fingerprints = dict(runtime.fingerprints)
        adapters = dict(runtime.adapters_used)
        described = target.describe()
        hits = cache.hits
    finally:
        runtime.close()
        cache.close()

    clean = [r for r in results if r.group == CLEAN]
    aggregates = aggregate_scores(metrics, [r.scores for r in clean], _inputs(clean))
    _adversarial_aggregates(aggregates, results)
    if repeat > 1:
        _pass_at_k(aggregates, clean, metrics, repeat)
    thresholds = check_thresholds(aggregates, dict(spec.thresholds))
    result = SuiteResult(
        suite=suite,
        target=described,
        dataset_ref=spec.dataset,
        config_hash=spec.config_hash(),
        versions=_versions(config, fingerprints, adapters, spec),
        started=started.isoformat(timespec="seconds"),
        seconds=time.perf_counter() - clock,
        cases=results,
        aggregates=aggregates,
        thresholds=list(thresholds),  # type: ignore[arg-type]  # SuiteResult converts them
        passed=all(t.passed for t in thresholds),
        robustness=_robustness(results, metrics),
    )
    result.versions["cache"] = {"hits": hits, "repeat": repeat, "seed": seed}
    if options.label:
        result.target["label"] = options.label
    return result


def _has_injection(spec: EvalSuiteSpec, options: EvalOptions) -> bool:
    adversarial = spec.adversarial
    return options.adversarial and (adversarial.injection or "injection" in adversarial.fuzz)


def _check_threshold_keys(spec: EvalSuiteSpec, metrics: list[Metric], *, canary: bool, injection: bool) -> None:
    """Every threshold names a metric this run will report, checked before any generation."""
    known = {key for metric in metrics for key in metric.keys()}  # noqa: SIM118 - Metric.keys(), not a dict
    known |= {LEAKAGE_METRIC} if canary else set()
    known |= {INJECTION_METRIC} if injection else set()
    for key in spec.thresholds:
        metric = key if key in known else key.rpartition(".")[0]
        if metric not in known and not any(metric.startswith(f"{k}.") for k in known):
            raise UsageError(
                f"threshold {key}: no metric {metric or key!r} in this suite",
                hint=f"Known metrics: {', '.join(sorted(known))}; a key is 'metric' or 'metric.stat'.",
            )


def _metrics(config: ProjectConfig, spec: EvalSuiteSpec, runtime: EvalRuntime, options: EvalOptions) -> list[Metric]:
    from llmops_cli.evals.judge import judge_metric_factory

    judge_default = spec.judge_model
    factory = judge_metric_factory(lambda model: runtime.model_provider(model, None, batched=False), judge_default)
    specs = [MetricSpec.parse(m) for m in spec.metrics]
    rubric = spec.judge_rubric
    if rubric:  # the suite's default rubric for judge metrics that do not set their own
        specs = [replace(s, rubric=s.rubric or rubric) if s.type in ("judge", "pairwise") else s for s in specs]
    return build_metrics(specs, root=config.root, config=config, allow_code=options.allow_code, judge=factory)


def _run_cases(
    runtime: EvalRuntime, target: Target, cases: list[EvalCase], repeat: int, progress: ProgressFn | None
) -> list[list[CaseOutput]]:
    """outputs[i][s]: case i, sample s. Worker threads feed the batcher; errors stay per case."""
    jobs = [(i, s) for s in range(repeat) for i in range(len(cases))]
    outputs: list[list[CaseOutput]] = [[CaseOutput() for _ in range(repeat)] for _ in cases]
    done = 0
    done_lock = threading.Lock()

    def work(job: tuple[int, int]) -> None:
        nonlocal done
        i, s = job
        state = runtime.state
        state.sample, state.hits, state.misses, state.keys = s, 0, 0, []
        with runtime.client():
            try:
                out = target.run(cases[i])
            except LlmopsError as error:
                if _is_setup_error(error):
                    raise
                out = CaseOutput(error=str(error))
            except Exception as error:  # a case that crashes is a failed case, not a failed run
                out = CaseOutput(error=f"{type(error).__name__}: {error}")
        out.cached = state.misses == 0 and state.hits > 0
        _case_latency(runtime, target, out, state.keys)
        outputs[i][s] = out
        with done_lock:
            done += 1
            if progress is not None:
                progress(done, len(jobs))

    # The first case runs alone: it loads the model and surfaces setup errors (missing adapter,
    # unknown model) once, instead of once per worker.
    if jobs:
        work(jobs[0])
    workers = target.workers or runtime.options.batch_size
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="eval") as pool:
        for future in [pool.submit(work, job) for job in jobs[1:]]:
            future.result()
    return outputs


def _case_latency(runtime: EvalRuntime, target: Target, out: CaseOutput, keys: list[str]) -> None:
    """A fully cached case reports the latency measured when it was generated (a chain's retrieval
    included), not today's retrieval time plus the cached generation time; a fresh one stores it."""
    cache = runtime.cache
    if cache is None or out.error is not None or out.latency_ms is None or not keys:
        return
    key = cache.case_key(target.target.as_dict(), keys)
    if out.cached:
        stored = cache.case_latency(key)
        if stored is not None:
            out.latency_ms = stored
        return
    cache.put_case_latency(key, out.latency_ms)


def _is_setup_error(error: LlmopsError) -> bool:
    """Errors that would hit every case the same way (a missing adapter, model or package) abort the
    run with their exit code and hint; anything else (bad JSON from the model...) fails one case."""
    cause = getattr(error, "cause", None)
    for err in (error, cause):
        if isinstance(err, LlmopsError) and (getattr(err, "setup", False) or err.exit_code in (3, 7)):
            return True
    return False


def _pairwise_others(
    config: ProjectConfig, spec: EvalSuiteSpec, metrics: list[Metric], runtime: EvalRuntime, cases: list[EvalCase]
) -> dict[str, dict[str, str]]:
    from llmops_cli.evals.judge import PairwiseMetric

    others: dict[str, dict[str, str]] = {}
    clean = [c for c in cases if c.group == CLEAN]
    for metric in metrics:
        if isinstance(metric, PairwiseMetric) and metric.spec.against:
            target = build_target(runtime, target_for_name(config, metric.spec.against))
            outputs = _run_cases(runtime, target, clean, 1, None)
            metric.others = {
                c.id: _text(o[0].prediction) for c, o in zip(clean, outputs, strict=True) if o[0].error is None
            }
            others[metric.name] = dict(metric.others)
    return others


def _text(value: Any) -> str:
    from llmops_cli.evals.metrics import output_text

    return output_text(value)


def _score(
    metrics: list[Metric],
    cases: list[EvalCase],
    outputs: list[list[CaseOutput]],
    repeat: int,
    canary: str | None,
    others: dict[str, dict[str, str]],
) -> list[CaseResult]:
    results: list[CaseResult] = []
    for case, samples in zip(cases, outputs, strict=True):
        for s, out in enumerate(samples):
            results.append(
                CaseResult(
                    case_id=case.id,
                    inputs=dict(case.variables),
                    prediction=_text(out.prediction),
                    reference=case.references[0] if case.references else None,
                    latency_ms=out.latency_ms,
                    tokens=dict(out.tokens),
                    sample=s,
                    error=out.error,
                    cached=out.cached,
                    group=case.group,
                    details=dict(out.details),
                )
            )
    ok = [i for i, r in enumerate(results) if r.error is None]
    flat_cases = [case for case in cases for _ in range(repeat)]
    flat_outputs = [o for samples in outputs for o in samples]
    items = [_input(flat_cases[i], flat_outputs[i]) for i in ok]
    for i, scores in zip(ok, score_cases(metrics, items), strict=True):
        results[i].scores.update(scores)
    for i in ok:
        case, text = flat_cases[i], results[i].prediction
        if canary:
            results[i].scores[LEAKAGE_METRIC] = float(canary not in text)
        if case.marker:
            results[i].scores[INJECTION_METRIC] = float(case.marker.lower() not in text.lower())
    flags = {m.name for m in metrics if m.kind in FLAG_KINDS} | {LEAKAGE_METRIC, INJECTION_METRIC}
    for r in results:
        r.passed = {k: v is not None and v >= 1.0 for k, v in r.scores.items() if k in flags and v is not None}
    return results


def _input(case: EvalCase, out: CaseOutput) -> CaseInput:
    generation = {"latency_ms": out.latency_ms, **{f"{k}_tokens": v for k, v in out.tokens.items()}}
    return CaseInput(out.prediction, case.references, {**case.row, **case.variables, "id": case.id}, generation)


def _inputs(results: list[CaseResult]) -> list[CaseInput]:
    return [CaseInput(r.prediction, [r.reference] if r.reference else [], {"id": r.case_id}) for r in results]


def _adversarial_aggregates(aggregates: dict[str, dict[str, Any]], results: list[CaseResult]) -> None:
    for key in (LEAKAGE_METRIC, INJECTION_METRIC):
        values = [r.scores.get(key) for r in results if key in r.scores]
        if values:
            aggregates[key] = aggregate(values)


def _pass_at_k(aggregates: dict[str, dict[str, Any]], clean: list[CaseResult], metrics: list[Metric], k: int) -> None:
    """pass@1 and pass@k for the pass/fail metrics, over each case's k samples."""
    by_case: dict[str, list[CaseResult]] = {}
    for r in clean:
        by_case.setdefault(r.case_id, []).append(r)
    for metric in metrics:
        if metric.kind not in FLAG_KINDS or metric.name not in aggregates:
            continue
        samples = [[r.scores.get(metric.name) for r in rs] for rs in by_case.values()]
        aggregates[metric.name]["pass@1"] = mean_pass_at_k(samples, 1)
        aggregates[metric.name][f"pass@{k}"] = mean_pass_at_k(samples, k)


def _robustness(results: list[CaseResult], metrics: list[Metric]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per fuzz kind and metric: clean mean, fuzzed mean and drop, over the cases both scored."""
    from llmops_cli.evals.results import lower_is_better

    clean: dict[tuple[str, int], CaseResult] = {(r.case_id, r.sample): r for r in results if r.group == CLEAN}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    groups = sorted({r.group for r in results if r.group.startswith("fuzz:")})
    skip = ("latency_ms", "tokens", "length")
    keys = [key for metric in metrics if metric.kind not in skip for key in metric.keys()]  # noqa: SIM118
    for group in groups:
        kind = group.split(":", 1)[1]
        per_metric: dict[str, dict[str, float | None]] = {}
        for key in keys:
            pairs = []
            for r in results:
                if r.group != group:
                    continue
                base = clean.get((r.case_id.rsplit("~", 1)[0], r.sample))
                a, b = (base.scores.get(key) if base else None), r.scores.get(key)
                if a is not None and b is not None:
                    pairs.append((a, b))
            if pairs:
                c = sum(a for a, _ in pairs) / len(pairs)
                f = sum(b for _, b in pairs) / len(pairs)
                per_metric[key] = {
                    "clean": c,
                    "fuzzed": f,
                    "drop": (f - c) if lower_is_better(key) else (c - f),
                    "n": len(pairs),
                }
        out[kind] = per_metric
    return out


def _versions(
    config: ProjectConfig, fingerprints: dict[str, str], adapters: dict[str, str], spec: EvalSuiteSpec
) -> dict[str, Any]:
    from llmops_cli.versioning.artifacts import library_versions

    out: dict[str, Any] = {"models": fingerprints, "adapters": adapters, "libraries": library_versions()}
    try:
        from llmops_cli.versioning.gitrepo import GitRepo

        out["git_sha"] = GitRepo(config.root).head()
    except Exception:  # not a git repo, or no commit yet: lineage without a sha
        out["git_sha"] = None
    return out


__all__ = ["EvalOptions", "ModelOverride", "load_cases", "run_suite", "suite_spec"]
