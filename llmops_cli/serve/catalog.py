"""What the ``model`` field of a request can name, and the (batched) provider behind each name.

Model ids (listed by ``GET /v1/models``):

* ``NAME`` for each entry under ``models:`` (local or remote);
* ``NAME`` for each ``quantized:`` entry that has been built (``artifacts/quantized/NAME``);
* ``ADAPTER`` for each trained adapter (``artifacts/adapter/ADAPTER/adapter_config.json``): its
  base model with the adapter, as vLLM names LoRA modules; ``MODEL+ADAPTER`` (not listed) puts an
  adapter on another model;
* ``chain:NAME`` for each chain with at most one input: a chat request runs the chain on the
  last user message;
* the project's name: an alias of the served package's chain (or model), else of the default model.

A gateway (``options.upstream``, see :mod:`llmops_cli.serve.upstream`) serves the upstream's model
ids instead, and nothing of the project's own.

Every generation goes through one :class:`BatchingProvider` per (model, adapter), so concurrent
requests for the same model are merged into batched ``generate`` calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import LlmopsError, UsageError
from llmops_cli.filenames import ADAPTER_CONFIG
from llmops_cli.generation import Provider
from llmops_cli.serve.errors import ApiError

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.providers.batching import BatchingProvider
    from llmops_cli.serve.options import ServeOptions
    from llmops_cli.serve.upstream import Upstream

ProviderFactory = Callable[[str, "Path | None"], Provider]  # (model or quantized name, adapter folder)
CHAIN_PREFIX = "chain:"


@dataclass(frozen=True)
class Target:
    """What one model id serves: a model (optionally with an adapter) or a chain."""

    id: str
    kind: str  # "model" | "quantized" | "adapter" | "chain" | "alias" | "upstream"
    model: str | None = None
    adapter: str | None = None
    chain: str | None = None
    alias_of: str | None = None

    def card(self, created: int) -> dict[str, Any]:
        """The ``/v1/models`` entry (OpenAI's fields, vLLM's ``root``/``parent``, and ours under ``llmops``)."""
        card: dict[str, Any] = {"id": self.id, "object": "model", "created": created, "owned_by": "llmops"}
        if self.kind == "adapter":
            card.update(root=self.model, parent=self.model)
        details = {"kind": self.kind, "model": self.model, "adapter": self.adapter, "chain": self.chain}
        if self.alias_of:
            details["alias_of"] = self.alias_of
        card["llmops"] = {k: v for k, v in details.items() if v is not None}
        return card


class Readiness:
    """Whether the default model is loaded: ``loading`` → ``ready`` (or ``error`` with why)."""

    def __init__(self) -> None:
        self.state = "loading"
        self.error: str | None = None
        self.event = threading.Event()

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def set(self, state: str, error: str | None = None) -> None:
        self.state, self.error = state, error
        self.event.set()


class ModelCatalog:
    """Model ids of one served project, resolved to targets and batched providers."""

    def __init__(
        self,
        config: ProjectConfig,
        options: ServeOptions,
        *,
        provider_factory: ProviderFactory | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.upstream: Upstream | None = None
        if options.upstream:
            from llmops_cli.serve.upstream import Upstream

            self.upstream = Upstream(options)
        self._factory = provider_factory or self._project_provider
        self._lock = threading.Lock()
        self._batchers: dict[tuple[str, str], BatchingProvider] = {}
        self.readiness = Readiness()
        self._default: Target | None = None
        if self.upstream is None:
            self._default = self._default_target()

    @property
    def device(self) -> str:
        """Where local models run (``upstream`` for a gateway)."""
        return "upstream" if self.upstream is not None else self.options.device

    @property
    def default(self) -> Target:
        """What a request without ``model`` gets, and what ``/ready`` waits for."""
        if self.upstream is not None:
            return self.upstream.target(self.upstream.default_id())
        assert self._default is not None
        return self._default

    def check_ready(self) -> None:
        """Bring ``readiness`` up to date: a gateway asks its upstream (blocking; call from a thread)."""
        if self.upstream is not None:
            self.upstream.check(self.readiness)

    # --- ids -----------------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        """Every id a request may name (adapters and quantized models only once built), in listing order."""
        if self.upstream is not None:
            return [self.upstream.target(m) for m in self.upstream.models()]
        cfg = self.config
        found = [Target(name, "model", model=name) for name in cfg.models]
        found += [Target(n, "quantized", model=n) for n in cfg.quantized if n not in cfg.models and self._built(n)]
        taken = {t.id for t in found}
        for name, entry in cfg.adapters.items():
            if name not in taken and self._trained(name):
                found.append(Target(name, "adapter", model=entry.base, adapter=name))
        for name, chain in cfg.chains.items():
            if len(chain.inputs) <= 1:
                found.append(Target(CHAIN_PREFIX + name, "chain", chain=name))
        alias = self._alias(found)
        return [*found, alias] if alias is not None else found

    def resolve(self, model_id: str | None) -> Target:
        """The target for a request's ``model`` (the default when it names none); 404 if unknown."""
        if self.upstream is not None:
            return self.upstream.resolve(model_id)
        if not model_id:
            return self.default
        if model_id in self.config.models:  # the common case, without looking at artifacts on disk
            return Target(model_id, "model", model=model_id)
        for target in self.targets():
            if target.id == model_id:
                return self.resolve(target.alias_of) if target.alias_of else target
        model, plus, adapter = model_id.partition("+")
        if plus and (model in self.config.models or model in self.config.quantized) and self._trained(adapter):
            return Target(model_id, "adapter", model=model, adapter=adapter)
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist on this server. GET /v1/models lists the ones it serves.",
            code="model_not_found",
            param="model",
        )

    def _alias(self, found: list[Target]) -> Target | None:
        name = self.config.name
        if any(t.id == name for t in found):
            return None
        package = self._package_entry()
        if package is not None and package.chain:
            return Target(name, "alias", alias_of=CHAIN_PREFIX + package.chain)
        return None if self._default is None else Target(name, "alias", alias_of=self._default.id)

    def _package_entry(self) -> Any:
        name = self.options.package
        return self.config.packages.get(name) if name else None

    def _default_target(self) -> Target:
        if self.options.default_model:
            try:
                return self.resolve(self.options.default_model)
            except ApiError:
                known = ", ".join(t.id for t in self.targets()) or "none"
                raise UsageError(
                    f"--model {self.options.default_model}: no such model on this server.", hint=f"Known: {known}."
                ) from None
        package = self._package_entry()
        if package is not None and package.model:
            model, adapter = package.model, package.adapter
            model_id = f"{model}+{adapter}" if adapter else model
            return Target(model_id, "adapter" if adapter else self._kind(model), model=model, adapter=adapter)
        if package is not None and package.chain:
            return Target(CHAIN_PREFIX + package.chain, "chain", chain=package.chain)
        local = [name for name, spec in self.config.models.items() if not spec.is_remote]
        candidates = local or list(self.config.models) or [n for n in self.config.quantized if self._built(n)]
        if not candidates:
            raise UsageError(
                f"{self.config.path.name} declares no model to serve.",
                hint="Add one under 'models:' (e.g. base: {source: smollm2-135m-instruct}).",
            )
        return Target(candidates[0], self._kind(candidates[0]), model=candidates[0])

    def _kind(self, model: str) -> str:
        return "quantized" if model in self.config.quantized and model not in self.config.models else "model"

    def _artifact(self, kind: str, name: str) -> Path:
        from llmops_cli.versioning import ArtifactRegistry

        return ArtifactRegistry.for_config(self.config).folder(kind, name)

    def _built(self, quantized: str) -> bool:
        from llmops_cli.models.identity import is_built

        return is_built(self._artifact("quantized", quantized))

    def _trained(self, adapter: str) -> bool:
        return adapter in self.config.adapters and (self.adapter_path(adapter) / ADAPTER_CONFIG).is_file()

    def adapter_path(self, adapter: str) -> Path:
        return self._artifact("adapter", adapter)

    # --- providers -----------------------------------------------------------------------------

    def provider(self, target: Target) -> BatchingProvider:
        """The batched provider of a model target (not for chains)."""
        if target.model is None:
            raise ApiError(400, f"'{target.id}' is a chain, not a model.", param="model")
        adapter = self.adapter_path(target.adapter) if target.adapter else None
        return self.batched(target.model, adapter)

    def batched(self, model: str, adapter: Path | None) -> BatchingProvider:
        """One shared batcher per (model, adapter folder), made on first use (chains use this too)."""
        from llmops_cli.providers.batching import BatchingProvider

        key = (model, str(adapter or ""))
        with self._lock:
            batcher = self._batchers.get(key)
        if batcher is not None:
            return batcher
        inner = self._factory(model, adapter)  # outside the lock: may check files, never loads weights
        with self._lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = BatchingProvider(
                    inner,
                    max_batch=self.options.max_batch,
                    max_wait_ms=self.options.max_wait_ms,
                    max_pending=self.options.max_concurrency,
                )
                self._batchers[key] = batcher
        return batcher

    def _project_provider(self, model: str, adapter: Path | None) -> Provider:
        if self.upstream is not None:
            return self.upstream.provider(model)
        from llmops_cli.providers import get_provider

        return get_provider(
            self.config, model, adapter_path=adapter, batch_size=self.options.max_batch, device=self.options.device
        )

    def queue_depth(self) -> int:
        with self._lock:
            batchers = list(self._batchers.values())
        return sum(b.pending for b in batchers)

    def warm(self, on_loaded: Callable[[Target], None] | None = None) -> None:
        """Load the default target's model(s) now, then mark the server ready (or failed, with why)."""
        if self.upstream is not None:
            self.upstream.check(self.readiness, force=True)
            return
        try:
            for model, adapter in self._models_of(self.default):
                inner = self.batched(model, adapter).inner
                load = getattr(inner, "load", None)
                if callable(load):
                    load()
            if on_loaded is not None:
                on_loaded(self.default)
        except LlmopsError as error:
            self.readiness.set("error", error.message + (f" {error.hint}" if error.hint else ""))
        except Exception as error:  # a broken model file must leave a failed /ready, not a dead thread
            self.readiness.set("error", f"{type(error).__name__}: {error}")
        else:
            self.readiness.set("ready")

    def _models_of(self, target: Target) -> list[tuple[str, Path | None]]:
        if target.model is not None:
            return [(target.model, self.adapter_path(target.adapter) if target.adapter else None)]
        from llmops_cli.prompts import load_prompt

        pairs: list[tuple[str, Path | None]] = []
        for step in self.config.chains[str(target.chain)].prompt_steps():
            model = step.model or load_prompt(self.config, step.prompt).model
            adapter = self.adapter_path(step.adapter) if step.adapter else None
            if model and (model, adapter) not in pairs:
                pairs.append((model, adapter))
        return pairs

    def close(self) -> None:
        with self._lock:
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.close()
        if self.upstream is not None:
            self.upstream.close()
