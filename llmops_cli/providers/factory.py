"""The one way chains, eval and serving get a provider for a ``models:`` entry.

Providers are cached per (project, model entry, adapter, device), so a chain whose steps all use
``base`` loads the weights once per process. The cache key includes the entry's yaml, so an edited
llmops.yaml (or another project with the same model name) never gets a stale provider.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_cli.errors import UsageError
from llmops_cli.generation import Provider
from llmops_cli.providers.adapters import check_adapter_folder
from llmops_cli.providers.local import LocalProvider
from llmops_cli.providers.openai_http import OpenAIProvider
from llmops_cli.providers.runtime import LLAMA_CPP, choose_runtime

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec, ProjectConfig

SUPPORTED_REMOTE = ("openai",)

_CacheKey = tuple[str, ...]
_CACHE: dict[_CacheKey, Provider] = {}
_CACHE_LOCK = threading.Lock()


def get_provider(
    config: ProjectConfig,
    model_name: str,
    *,
    adapter_path: Path | None = None,
    batch_size: int = 8,
    device: str = "cpu",
) -> Provider:
    """The provider for ``models: <model_name>`` (optionally with a LoRA adapter folder).

    ``adapter_path`` may be relative to the project root. Nothing heavy happens here: a local model
    loads on its first ``generate``. Asking again with another ``batch_size`` shares the same
    loaded model.
    """
    spec = _model_spec(config, model_name)
    if spec.is_remote:
        return _remote_provider(config, spec, adapter_path)
    adapter = None if adapter_path is None else config.resolve_path(str(adapter_path)).resolve()
    if adapter is not None:
        check_adapter_folder(adapter)
    choice = choose_runtime(spec, config.root, adapter=adapter, device=device)
    if choice.engine == LLAMA_CPP:
        return _llama_cpp_provider(config, spec, choice.gguf, adapter, device)
    key = ("local", str(config.root.resolve()), model_name, _entry_key(spec), str(adapter or ""), device)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            cached = LocalProvider(spec, config.root, adapter_path=adapter, batch_size=batch_size, device=device)
            _CACHE[key] = cached
    assert isinstance(cached, LocalProvider)
    return cached if cached.batch_size == batch_size else cached.with_batch_size(batch_size)


def _llama_cpp_provider(
    config: ProjectConfig, spec: ModelSpec, gguf: Path | None, adapter: Path | None, device: str
) -> Provider:
    from llmops_cli.providers.llama_cpp import LlamaCppProvider

    assert gguf is not None
    key = ("llama-cpp", str(config.root.resolve()), spec.name, _entry_key(spec), str(adapter or ""), device)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            cached = LlamaCppProvider(
                spec,
                gguf,
                adapter_path=adapter,
                base_folder=(lambda: _lora_base_folder(config, spec)) if adapter is not None else None,
            )
            _CACHE[key] = cached
    return cached


def _lora_base_folder(config: ProjectConfig, spec: ModelSpec) -> Path:
    """An HF folder with the base model's config.json, which llama.cpp's LoRA converter reads."""
    from llmops_cli.models import materialize
    from llmops_cli.models.identity import identity

    base = identity(config, spec.quantized).spec if spec.quantized in config.quantized else spec
    return materialize(base, config.root)


def clear_provider_cache() -> None:
    """Forget every cached provider (and so release loaded models once nothing else holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _model_spec(config: ProjectConfig, model_name: str) -> ModelSpec:
    if model_name in config.models:
        return config.models[model_name]
    if model_name in config.quantized:
        # The built artifacts/quantized/NAME/ folder (UsageError with 'llmops quantize NAME' when absent);
        # LocalProvider loads it with bitsandbytes, plus the adapter a merge: false build ships.
        from llmops_cli.providers.quantized import quantized_model_spec

        return quantized_model_spec(config, model_name)
    from llmops_cli.models.identity import unknown_model_error

    raise unknown_model_error(config, model_name)


def _remote_provider(config: ProjectConfig, spec: ModelSpec, adapter_path: Path | None) -> Provider:
    if adapter_path is not None:
        raise UsageError(
            f"Model '{spec.name}' is remote ({spec.base_url}); llmops cannot put a LoRA adapter on it.",
            hint="Use the adapter with a local model, or serve base+adapter behind the API (e.g. vLLM --lora-modules).",
        )
    if spec.provider not in SUPPORTED_REMOTE:
        raise UsageError(f"Model '{spec.name}': provider '{spec.provider}' is not supported (use 'openai').")
    key = ("remote", str(config.root.resolve()), spec.name, _entry_key(spec))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            cached = OpenAIProvider.from_spec(spec)
            _CACHE[key] = cached
    return cached


def _entry_key(spec: ModelSpec) -> str:
    """The entry as typed, every field: an edited llmops.yaml entry never gets a stale provider."""
    return repr(spec)
