"""The chain runtime of an eval run: model overrides, the canary, cached and batched providers.

Every (case, sample) of :func:`llmops_cli.evals.runner.run_suite` runs in a worker thread; their model
calls meet in one :class:`~llmops_cli.providers.batching.BatchingProvider` per (model, adapter), behind
the output cache, which answers every call it has seen with the same model fingerprint, adapter,
rendered prompt and parameters.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmops_cli.chains.runtime import ProjectRuntime
from llmops_cli.config import ProjectConfig
from llmops_cli.errors import LlmopsError, UsageError
from llmops_cli.evals.cases import plant_canary
from llmops_cli.filenames import ADAPTER_CONFIG, ADAPTER_WEIGHTS_PREFIX
from llmops_cli.generation import GenerationRequest, GenerationResult, Message, Provider


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
class CaseOutput:
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
        with setup_errors():
            path = super().adapter_path(name)
        if path is not None:
            self.adapters_used[name] = adapter_id(path)
        return path

    def provider(self, model: str, adapter: Path | None) -> Provider:
        override = self.options.override
        if override is not None:
            model = override.model
            with setup_errors():
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
        with self._lock, setup_errors():
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
def setup_errors() -> Iterator[None]:
    """Tag errors raised while preparing a model or adapter: they abort the run, not one case."""
    try:
        yield
    except LlmopsError as error:
        error.setup = True  # type: ignore[attr-defined]
        raise


def model_fingerprint(config: ProjectConfig, model: str) -> str:
    """The weights' identity behind a ``models:`` or ``quantized:`` name (the cache key's model part)."""
    from llmops_cli.models.identity import identity

    if model not in config.models and model not in config.quantized:
        return f"name:{model}"  # get_provider raises the helpful error for an unknown name
    weights = identity(config, model)  # a quantized name: the build being checked, before it is registered
    return weights.fingerprint() if weights.built else f"name:{model}"


def adapter_id(path: Path) -> str:
    """sha256 over an adapter folder's config and weights: a retrained adapter is a new cache key."""
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.name == ADAPTER_CONFIG or file.name.startswith(ADAPTER_WEIGHTS_PREFIX):
            if file.suffix == ".ptr":
                digest.update(file.read_bytes())
                continue
            from llmops_cli.models.hashing import file_sha256

            digest.update(f"{file.name}\0{file_sha256(file)}\n".encode())
    return "sha256:" + digest.hexdigest()
