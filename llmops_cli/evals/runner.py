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

import contextlib
import datetime as _dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmops_cli.chains.runtime import ProjectRuntime
from llmops_cli.config import ProjectConfig
from llmops_cli.config.evals import EvalSuiteSpec, EvalTarget
from llmops_cli.errors import LlmopsError, UsageError
from llmops_cli.evals.cases import CLEAN, EvalCase, adversarial_cases, cases_from_rows, plant_canary
from llmops_cli.evals.metrics import CaseInput, Metric, MetricSpec, aggregate_scores, build_metrics, score_cases
from llmops_cli.evals.results import CaseResult, SuiteResult
from llmops_cli.evals.thresholds import aggregate, check_thresholds, mean_pass_at_k, parse_threshold
from llmops_cli.generation import GenerationRequest, GenerationResult, Message, Provider

# (done, total) after each case; called from worker threads.
ProgressFn = Callable[[int, int], None]  # (cases done, in all): one phase, so not llmops_cli.progress's shape
INJECTION_METRIC = "injection_resisted"
LEAKAGE_METRIC = "leakage_resisted"
FLAG_KINDS = frozenset({"exact_match", "contains", "not_contains", "regex", "json_valid", "json_schema"})
ENDPOINT_KEY_ENV = "LLMOPS_API_KEY"


@dataclass(frozen=True)
class ModelOverride:
    """Run the suite's target with another model (a ``models:`` or ``quantized:`` name) and adapter.

    ``adapter=None`` means no adapter at all: the steps' own adapters are dropped, because an
    adapter belongs to the base it was trained on.
    """

    model: str
    adapter: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelOverride:
        """``base`` or ``base+support-lora`` (the ``--models`` syntax)."""
        model, _, adapter = text.strip().partition("+")
        if not model:
            raise UsageError(
                f"cannot read model {text!r}", hint="Write MODEL or MODEL+ADAPTER, e.g. base+support-lora."
            )
        return cls(model, adapter or None)

    @property
    def label(self) -> str:
        return self.model + (f"+{self.adapter}" if self.adapter else "")


@dataclass
class EvalOptions:
    override: ModelOverride | None = None
    use_cache: bool = True  # False: do not read cached outputs (fresh ones are still stored)
    limit: int | None = None  # only the first N dataset cases
    repeat: int | None = None  # default: the suite's `repeat` (1)
    seed: int | None = None  # default: the suite's `seed` (0)
    batch_size: int = 8
    use_adapters: bool = True
    allow_code: bool = False
    adversarial: bool = True
    prompt_overrides: dict[str, Any] = field(default_factory=dict)  # prompt name -> PromptSpec (prompt diff)
    label: str | None = None  # shown instead of the target in side-by-side tables


@dataclass
class _Output:
    prediction: Any = None
    latency_ms: float | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    cached: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class _CaseState(threading.local):
    sample: int = 0
    hits: int = 0
    misses: int = 0
    keys: list[str] | None = None  # cache keys of this case's generations, in order


class _EvalProvider:
    """Per (model, adapter): seeds per sample, answers from the cache, batches the rest."""

    def __init__(self, runtime: EvalRuntime, batcher: Any, fingerprint: str, adapter_id: str | None) -> None:
        self.runtime = runtime
        self.batcher = batcher
        self.name = batcher.name
        self.fingerprint = fingerprint
        self.adapter_id = adapter_id

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        state = self.runtime.state
        if state.sample:  # repeated samples draw different seeds (identical under greedy decoding)
            requests = [self._seeded(r, state.sample) for r in requests]
        cache = self.runtime.cache
        if cache is None:
            state.misses += len(requests)
            return self.batcher.generate(requests)
        keys = [cache.key(self.fingerprint, self.adapter_id, list(r.messages), r.params) for r in requests]
        if state.keys is not None:
            state.keys.extend(keys)
        found = cache.get_many(keys) if self.runtime.read_cache else {}
        missing = [i for i, key in enumerate(keys) if key not in found]
        fresh = self.batcher.generate([requests[i] for i in missing]) if missing else []
        cache.put_many((keys[i], result) for i, result in zip(missing, fresh, strict=True))
        state.hits += len(requests) - len(missing)
        state.misses += len(missing)
        by_index = dict(zip(missing, fresh, strict=True))
        return [by_index[i] if i in by_index else found[keys[i]].to_generation_result() for i in range(len(requests))]

    def _seeded(self, request: GenerationRequest, sample: int) -> GenerationRequest:
        base = request.params.seed if request.params.seed is not None else self.runtime.seed
        return replace(request, params=replace(request.params, seed=base + sample))


class EvalRuntime(ProjectRuntime):
    """The chain runtime of an eval: overrides, canary, cached + batched providers, shared retrieval."""

    def __init__(
        self,
        config: ProjectConfig,
        *,
        options: EvalOptions,
        cache: Any,
        canary: str | None,
        seed: int,
    ) -> None:
        super().__init__(config, use_adapters=options.use_adapters)
        self.options = options
        self.cache = cache
        self.read_cache = options.use_cache
        self.canary = canary
        self.seed = seed
        self.state = _CaseState()
        self.fingerprints: dict[str, str] = {}
        self.adapters_used: dict[str, str] = {}  # adapter name -> id (hash)
        self._providers: dict[tuple[str, str, bool], _EvalProvider] = {}
        self._batchers: list[Any] = []
        self._lock = threading.Lock()
        self._retrieve_lock = threading.Lock()

    # -- the Runtime protocol ----------------------------------------------------------------------
    def prompt(self, name: str) -> Any:
        if name in self.options.prompt_overrides:
            return self.options.prompt_overrides[name]
        return super().prompt(name)

    def render_prompt(self, spec: Any, variables: dict[str, Any]) -> list[Message]:
        return self.with_canary(super().render_prompt(spec, variables))

    def with_canary(self, messages: list[Message]) -> list[Message]:
        return plant_canary(messages, self.canary) if self.canary else messages

    def adapter_path(self, name: str) -> Path | None:
        if self.options.override is not None:
            return None  # provider() applies the override's adapter instead
        with _setup_errors():
            path = super().adapter_path(name)
        if path is not None:
            self.adapters_used[name] = adapter_id(path)
        return path

    def provider(self, model: str, adapter: Path | None) -> Provider:
        override = self.options.override
        if override is not None:
            model = override.model
            with _setup_errors():
                adapter = ProjectRuntime.adapter_path(self, override.adapter) if override.adapter else None
            if override.adapter and adapter is not None:
                self.adapters_used[override.adapter] = adapter_id(adapter)
        return self.model_provider(model, adapter)

    def retrieve(self, name: str, query: str, top_k: int | None) -> list[Any]:
        with self._retrieve_lock:  # tokenizers and the embedding model are not safe to share across threads
            return super().retrieve(name, query, top_k)

    # -- providers ---------------------------------------------------------------------------------
    def model_provider(self, model: str, adapter: Path | None, *, batched: bool = True) -> Provider:
        """A cached (and, for workers, batched) provider for ``model`` with ``adapter``."""
        key = (model, str(adapter or ""), batched)
        with self._lock, _setup_errors():
            if key not in self._providers:
                from llmops_cli.providers import get_provider
                from llmops_cli.providers.batching import BatchingProvider

                inner = get_provider(self.config, model, adapter_path=adapter, batch_size=self.options.batch_size)
                batcher: Any = inner
                if batched:
                    batcher = BatchingProvider(inner, max_batch=self.options.batch_size, max_pending=1_000_000)
                    self._batchers.append(batcher)
                fingerprint = self.fingerprint(model)
                engine = getattr(inner, "engine", "transformers")
                if engine != "transformers":  # another engine answers differently: its own cache entries
                    fingerprint = f"{fingerprint}|{engine}"
                self._providers[key] = _EvalProvider(
                    self, batcher, fingerprint, adapter_id(adapter) if adapter else None
                )
            return self._providers[key]

    def fingerprint(self, model: str) -> str:
        if model not in self.fingerprints:
            self.fingerprints[model] = model_fingerprint(self.config, model)
        return self.fingerprints[model]

    def client(self) -> Any:
        """Mark the calling worker as a batching client for the duration of one case."""
        stack = contextlib.ExitStack()
        for batcher in list(self._batchers):
            stack.enter_context(batcher.client())
        return stack

    def close(self) -> None:
        for batcher in self._batchers:
            batcher.close()


@contextlib.contextmanager
def _setup_errors() -> Iterator[None]:
    """Tag errors raised while preparing a model or adapter: they abort the run, not one case."""
    try:
        yield
    except LlmopsError as error:
        error.setup = True  # type: ignore[attr-defined]
        raise


def model_fingerprint(config: ProjectConfig, model: str) -> str:
    """The weights' identity behind a ``models:`` or ``quantized:`` name (the cache key's model part)."""
    from llmops_cli.models import fingerprint, folder_fingerprint
    from llmops_cli.models.resolver import resolve

    if model in config.models:
        return fingerprint(resolve(config.models[model], config.root))
    if model in config.quantized:
        from llmops_cli.providers.quantized import quantized_folder

        folder = quantized_folder(config, model)  # the build being checked, before it is registered
        if (folder / "config.json").is_file():
            return folder_fingerprint(folder)
        from llmops_cli.engines.gguf import GGUF_NAME
        from llmops_cli.models.hashing import file_sha256

        if (folder / GGUF_NAME).is_file():
            return "sha256:" + file_sha256(folder / GGUF_NAME)
    return f"name:{model}"  # get_provider raises the helpful error for an unknown name


def adapter_id(path: Path) -> str:
    """sha256 over an adapter folder's config and weights: a retrained adapter is a new cache key."""
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.name == "adapter_config.json" or file.name.startswith("adapter_model."):
            if file.suffix == ".ptr":
                digest.update(file.read_bytes())
                continue
            from llmops_cli.models.hashing import file_sha256

            digest.update(f"{file.name}\0{file_sha256(file)}\n".encode())
    return "sha256:" + digest.hexdigest()


# --- targets ---------------------------------------------------------------------------------------


class _Target:
    """Runs one case; subclasses know a chain, a prompt, a model or an endpoint."""

    workers: int | None = None  # cases run at once (default: the batch size)

    def __init__(self, runtime: EvalRuntime, spec: EvalTarget) -> None:
        self.runtime = runtime
        self.target = spec

    def run(self, case: EvalCase) -> _Output:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        out = self.target.as_dict()
        if self.runtime.options.override is not None:
            out["override"] = self.runtime.options.override.label
        return out


class _ChainTarget(_Target):
    def __init__(self, runtime: EvalRuntime, spec: EvalTarget, chain: str) -> None:
        super().__init__(runtime, spec)
        from llmops_cli.chains import ChainRunner

        self.chain = chain
        self.runner = ChainRunner(
            runtime.config, runtime=runtime, allow_code=runtime.options.allow_code, save_traces=False
        )
        self.inputs = list(runtime.config.chains[chain].inputs)

    def run(self, case: EvalCase) -> _Output:
        inputs = (
            {k: case.variables[k] for k in self.inputs if k in case.variables} if self.inputs else dict(case.variables)
        )
        run = self.runner.run(self.chain, inputs)
        latency = 0.0
        sources: list[str] = []
        for step in run.steps:
            if step.kind == "prompt":
                latency += float(step.details.get("generation_ms") or 0.0)  # the model's time, batch or cache
            elif not step.skipped:
                latency += step.latency_ms
            for chunk in step.details.get("chunks", []) if step.kind == "retrieve" else []:
                sources.append(str(chunk.get("source")))
        return _Output(run.result, latency, run.tokens, details={"sources": sources} if sources else {})


class _PromptTarget(_Target):
    def __init__(self, runtime: EvalRuntime, spec: EvalTarget) -> None:
        super().__init__(runtime, spec)
        self.spec = runtime.prompt(str(spec.prompt))
        self.model = spec.model or self.spec.model
        if not self.model:
            raise UsageError(
                f"eval target prompt '{spec.prompt}' has no model", hint="Set target.model in the suite."
            )
        self.adapter = runtime.adapter_path(spec.adapter) if spec.adapter else None

    def run(self, case: EvalCase) -> _Output:
        variables = {k: case.variables[k] for k in self.spec.variables if k in case.variables}
        messages = self.runtime.render_prompt(self.spec, variables)
        provider = self.runtime.provider(self.model, self.adapter)
        (result,) = provider.generate([GenerationRequest(tuple(messages), self.spec.params)])
        return _generation_output(result)


class _ModelTarget(_Target):
    """A bare model (or quantized model, or endpoint): the case's conversation, no prompt file."""

    def __init__(self, runtime: EvalRuntime, spec: EvalTarget, provider: Provider | None = None) -> None:
        super().__init__(runtime, spec)
        self.model = spec.model or spec.quantized
        self.adapter = runtime.adapter_path(spec.adapter) if spec.adapter else None
        self.fixed = provider

    def run(self, case: EvalCase) -> _Output:
        from llmops_cli.generation import GenerationParams

        provider = self.fixed or self.runtime.provider(str(self.model), self.adapter)
        messages = self.runtime.with_canary(list(case.messages))
        (result,) = provider.generate([GenerationRequest(tuple(messages), GenerationParams())])
        return _generation_output(result)


def _generation_output(result: GenerationResult) -> _Output:
    tokens = {"prompt": result.prompt_tokens, "completion": result.completion_tokens}
    return _Output(result.text.strip(), result.latency_ms, tokens)


ENDPOINT_TIMEOUT_S = 60.0
ENDPOINT_CONCURRENCY = 4


def _endpoint_provider(url: str, *, timeout_s: float = ENDPOINT_TIMEOUT_S) -> Provider:
    """An OpenAI-compatible client for a deployed endpoint (``http://host:port``, with or without /v1).

    ``timeout_s`` bounds each connect and read of one request (the target's ``timeout_s:``)."""
    import urllib.request

    from llmops_cli.providers import OpenAIProvider

    base = url.rstrip("/")
    base = base if base.endswith("/v1") else base + "/v1"
    model = "default"
    try:  # the first model the server lists; servers that do not list models take "default"
        request = urllib.request.Request(base + "/models")
        import os

        if os.environ.get(ENDPOINT_KEY_ENV):
            request.add_header("Authorization", f"Bearer {os.environ[ENDPOINT_KEY_ENV]}")
        with urllib.request.urlopen(request, timeout=min(10.0, timeout_s)) as response:  # noqa: S310 - user's URL
            listed = json.loads(response.read().decode("utf-8")).get("data") or []
            model = str(listed[0]["id"]) if listed else model
    except (OSError, ValueError, KeyError, IndexError):
        pass
    return OpenAIProvider(
        name=url, base_url=base, model=model, api_key_env=ENDPOINT_KEY_ENV, timeout_s=timeout_s, max_concurrency=1
    )


def build_target(runtime: EvalRuntime, spec: EvalTarget) -> _Target:
    if spec.chain is not None:
        return _ChainTarget(runtime, spec, spec.chain)
    if spec.prompt is not None:
        return _PromptTarget(runtime, spec)
    if spec.endpoint is not None:
        runtime.cache = None  # what runs behind a URL can change without us knowing: never cached
        timeout_s = spec.timeout_s if spec.timeout_s is not None else ENDPOINT_TIMEOUT_S
        target = _ModelTarget(runtime, spec, provider=_endpoint_provider(spec.endpoint, timeout_s=timeout_s))
        # Each eval worker holds one request at a time: `concurrency` workers = that many requests in flight.
        target.workers = max(1, spec.concurrency if spec.concurrency is not None else ENDPOINT_CONCURRENCY)
        return target
    if spec.model is not None or spec.quantized is not None:
        return _ModelTarget(runtime, spec)
    raise UsageError(f"eval target {spec.as_dict()!r} names none of chain, prompt, model, quantized, endpoint")


def target_for_name(config: ProjectConfig, name: str) -> EvalTarget:
    """A target from a bare name (pairwise `against:`): a chain, prompt, model or quantized entry."""
    for section, key in ((config.chains, "chain"), (config.prompts, "prompt"), (config.models, "model")):
        if name in section:
            return EvalTarget.from_dict({key: name})
    if name in config.quantized:
        return EvalTarget.from_dict({"quantized": name})
    raise UsageError(
        f"'{name}' is not a chain, prompt, model or quantized entry", hint="Check `against:` in the suite."
    )


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
    runtime: EvalRuntime, target: _Target, cases: list[EvalCase], repeat: int, progress: ProgressFn | None
) -> list[list[_Output]]:
    """outputs[i][s]: case i, sample s. Worker threads feed the batcher; errors stay per case."""
    jobs = [(i, s) for s in range(repeat) for i in range(len(cases))]
    outputs: list[list[_Output]] = [[_Output() for _ in range(repeat)] for _ in cases]
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
                out = _Output(error=str(error))
            except Exception as error:  # a case that crashes is a failed case, not a failed run
                out = _Output(error=f"{type(error).__name__}: {error}")
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


def _case_latency(runtime: EvalRuntime, target: _Target, out: _Output, keys: list[str]) -> None:
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
    outputs: list[list[_Output]],
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


def _input(case: EvalCase, out: _Output) -> CaseInput:
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
