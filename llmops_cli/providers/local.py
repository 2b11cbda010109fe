"""Text generation with a local transformers model (optionally with a LoRA adapter), batched.

Requests are rendered with the tokenizer's chat template, grouped by identical decoding params,
sorted by prompt length and run ``batch_size`` at a time through one left-padded ``generate`` call.
The model loads on the first ``generate`` (or :meth:`LocalProvider.load`) and stays loaded.
torch, transformers and peft are imported inside functions only.

The context window is the model config's ``max_position_embeddings`` (``max_context:`` on the model
entry lowers it). :meth:`LocalProvider.check` refuses a prompt that does not fit (batchers call it
per request before batching); ``generate`` cuts a prompt as ``truncate_prompt_tokens`` asks and
never generates past the window. A request whose ``cancel`` event is set stops at its next token
(its row of the batch ends; the other rows go on). :meth:`LocalProvider.stream` hands out the text
of one request as the model produces it (``stream: true`` in the server).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError, require
from llmops_cli.generation import GenerationParams, GenerationRequest, GenerationResult, Message, fit_prompt
from llmops_cli.providers.adapters import check_adapter_folder, with_adapter
from llmops_cli.providers.common import ProgressCallback, check_messages, find_stop, plan_batches, transcript

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec

# Sampling knobs a checkpoint's generation_config.json may carry; we lift them off the model so a
# greedy call does not trip transformers' "do_sample=False but temperature is set" warnings, and
# reuse them as defaults when a sampling request leaves them unset.
_SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "min_p", "typical_p", "repetition_penalty")


@dataclass
class _Loaded:
    """The loaded model, shared by providers that differ only in batch size."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    model: Any = None
    tokenizer: Any = None
    defaults: dict[str, Any] = field(default_factory=dict)  # sampling defaults lifted off the checkpoint
    eos_ids: frozenset[int] = frozenset()
    window: int | None = None  # context window in tokens (None: unknown, unchecked)


class LocalProvider:
    """A :class:`~llmops_cli.generation.Provider` over a local model from llmops.yaml.

    ``latency_ms`` of a result is the wall time of the batch it ran in (requests in one batch finish
    together), so it is comparable to what a caller waiting for that batch experienced.
    Calls are serialized with a lock: one model on one machine gains nothing from parallel calls.
    """

    def __init__(
        self,
        spec: ModelSpec,
        project_root: Path,
        *,
        adapter_path: Path | None = None,
        batch_size: int = 8,
        device: str = "cpu",
        dtype: str | None = None,
    ) -> None:
        if spec.is_remote:
            raise UsageError(f"Model '{spec.name}' is remote; use OpenAIProvider for it.")
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}.")
        if adapter_path is not None:
            check_adapter_folder(adapter_path)
        self.spec = spec
        self.project_root = project_root
        self.adapter_path = adapter_path
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.name = spec.name if adapter_path is None else f"{spec.name}+{adapter_path.name}"
        self._loaded = _Loaded()

    @property
    def loaded(self) -> bool:
        return self._loaded.model is not None

    def with_batch_size(self, batch_size: int) -> LocalProvider:
        """This provider with another batch size, sharing the already loaded (or lazily loaded) model."""
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}.")
        other = copy.copy(self)
        other.batch_size = batch_size
        return other

    def load(self) -> None:
        """Load the model now (servers warm up at start); later calls are free."""
        if self._loaded.model is not None:  # no lock: a running batch holds it for its whole length
            return
        with self._loaded.lock:
            if self._loaded.model is None:
                self._load()

    def tokenizer(self) -> Any:
        self.load()
        return self._loaded.tokenizer

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees for ``messages``."""
        check_messages(messages)
        tokenizer = self.tokenizer()
        if not getattr(tokenizer, "chat_template", None):
            return transcript(messages)
        try:
            text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        except Exception as error:  # jinja2 TemplateError, or a template's own raise_exception()
            raise UsageError(
                f"The chat template of model '{self.spec.name}' rejected the messages: {error}",
                hint="Adjust the messages (some templates forbid a system role) or set 'chat_template:'.",
            ) from error
        return str(text)

    @property
    def window(self) -> int | None:
        """The model's context window in tokens (loads the model)."""
        self.load()
        return self._loaded.window

    def encode(self, request: GenerationRequest) -> list[int]:
        """The prompt token ids of ``request``, cut as it asks; UsageError when they do not fit the window."""
        tokenizer = self.tokenizer()
        uses_template = bool(getattr(tokenizer, "chat_template", None))
        # A rendered template already holds BOS; adding special tokens again would double it.
        ids = tokenizer(self.render(request.messages), add_special_tokens=not uses_template)["input_ids"]
        return fit_prompt(list(ids), request.params, self._loaded.window, self.name)

    def check(self, request: GenerationRequest) -> None:
        """Raise the UsageError ``generate`` would raise for this request alone (prompt too long...)."""
        self.encode(request)

    def generate(
        self, requests: list[GenerationRequest], *, progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        """One result per request, in the same order; ``progress(done, total)`` after each batch."""
        if not requests:
            return []
        import torch

        with self._loaded.lock, torch.inference_mode():
            encoded = [self.encode(r) for r in requests]
            results: dict[int, GenerationResult] = {}
            for batch in plan_batches(requests, [len(ids) for ids in encoded], self.batch_size):
                rows = [requests[i] for i in batch]
                outputs = self._run_batch([encoded[i] for i in batch], rows[0].params, rows)
                results.update(zip(batch, outputs, strict=True))
                if progress is not None:
                    progress(len(results), len(requests))
        return [results[i] for i in range(len(requests))]

    def stream(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Generator[str, None, GenerationResult]:
        """Text pieces of ``request`` as the model produces them; the generator's return value is the result.

        The request runs alone (a batch of one) under the model's lock. Closing the generator, or
        setting ``cancel``, stops the generation at the next token (see :mod:`.local_stream`).
        """
        from llmops_cli.providers.local_stream import stream_local

        return stream_local(self, request, cancel)

    # --- internals -----------------------------------------------------------------------------

    def _load(self) -> None:
        for module in ("torch", "transformers"):
            require(module, extra="models", purpose=f"Generating with model '{self.spec.name}'")
        from llmops_cli.engines.cpus import configure_torch_threads

        configure_torch_threads()  # threads from the CPUs we may use, OpenMP not spinning (see engines.cpus)
        import transformers

        from llmops_cli.models import load_model
        from llmops_cli.providers.quantized import load_quantized, prequantized_folder

        # Callers render their own progress; transformers' "Loading weights" bar would cut into it.
        bars_were_enabled = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()
        try:
            # bitsandbytes weights (a `quantized:` build, or a folder of one) keep their dtype, maybe ship an adapter.
            quantized = prequantized_folder(self.spec, self.project_root)
            if quantized is not None:
                model, tokenizer = load_quantized(
                    self.spec, quantized, device=self.device, adapter_path=self.adapter_path
                )
            else:
                model, tokenizer = load_model(self.spec, self.project_root, dtype=self.dtype, device=self.device)
                if self.adapter_path is not None:
                    model = with_adapter(model, self.adapter_path)
        finally:
            if bars_were_enabled:
                transformers.utils.logging.enable_progress_bar()
        # Batched decoder-only generation must pad on the left so every row ends at its last token.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        loaded = self._loaded
        loaded.defaults = _lift_sampling_defaults(model.generation_config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        loaded.eos_ids = _eos_ids(model.generation_config.eos_token_id, tokenizer.eos_token_id)
        loaded.window = _context_window(model, self.spec)
        loaded.model, loaded.tokenizer = model, tokenizer

    def _run_batch(
        self, prompts: list[list[int]], params: GenerationParams, rows: Sequence[GenerationRequest] = ()
    ) -> list[GenerationResult]:

        model, tokenizer = self._loaded.model, self._loaded.tokenizer
        batch = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(model.device)
        width = batch["input_ids"].shape[1]
        window = self._loaded.window
        if window is not None and width + params.max_new_tokens > window:  # never past the window
            params = params.merged({"max_new_tokens": max(1, window - width)})
        config = self._generation_config(params)
        extra: dict[str, Any] = {"tokenizer": tokenizer} if params.stop else {}
        cancels = [r.cancel for r in rows]
        if any(c is not None for c in cancels):
            extra["stopping_criteria"] = _cancel_criteria(cancels)
        started = time.perf_counter()
        output = seeded_generate(model, params, **batch, generation_config=config, **extra)
        latency_ms = (time.perf_counter() - started) * 1000
        return [
            self._result(output[row, width:].tolist(), len(prompt), params, latency_ms)
            for row, prompt in enumerate(prompts)
        ]

    def _generation_config(self, params: GenerationParams) -> Any:
        from transformers import GenerationConfig

        settings: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": self._loaded.tokenizer.pad_token_id,
            "stop_strings": list(params.stop) or None,
            # Explicit, so a checkpoint whose generation_config lacks it still stops at EOS.
            "eos_token_id": sorted(self._loaded.eos_ids) or None,
        }
        defaults = self._loaded.defaults
        if params.temperature > 0:
            top_k = params.top_k if params.top_k is not None else defaults.get("top_k", 0)
            settings.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=top_k)
        else:
            settings.update(do_sample=False)
        penalty = params.repetition_penalty or defaults.get("repetition_penalty")
        if penalty is not None and penalty != 1.0:
            settings["repetition_penalty"] = penalty
        return GenerationConfig(**settings)

    def _result(
        self, generated: list[int], prompt_tokens: int, params: GenerationParams, latency_ms: float
    ) -> GenerationResult:
        """Text, usage and finish reason of one row; the row's padding after it finished is dropped."""
        tokenizer = self._loaded.tokenizer
        end = next((i for i, token in enumerate(generated) if token in self._loaded.eos_ids), None)
        body = generated if end is None else generated[:end]
        text = tokenizer.decode(body, skip_special_tokens=True)
        stop_at = find_stop(text, params.stop)
        if stop_at is not None:
            text, completion, finish = text[:stop_at], _tokens_until_stop(tokenizer, body, params.stop), "stop"
        elif end is not None:
            completion, finish = end + 1, "stop"  # the EOS token was generated too
        else:
            completion = len(generated)
            finish = "length" if completion >= params.max_new_tokens else "stop"
        return GenerationResult(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            latency_ms=latency_ms,
            finish_reason=finish,
            model=self.name,
        )


def seeded_generate(model: Any, params: GenerationParams, **kwargs: Any) -> Any:
    """``model.generate(**kwargs)``, seeded by ``params.seed`` when sampling.

    The seed goes into a forked RNG: reproducible per call without resetting the caller's global RNG.
    """
    if params.temperature > 0 and params.seed is not None:
        import torch

        devices = [model.device.index or 0] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(params.seed)
            return model.generate(**kwargs)
    return model.generate(**kwargs)


def _cancel_criteria(cancels: Sequence[Any]) -> Any:
    """A stopping criterion that ends each row whose cancel event is set (the others go on)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class RowsCancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = [c is not None and c.is_set() for c in cancels]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([RowsCancelled()])


def _context_window(model: Any, spec: ModelSpec) -> int | None:
    """``max_position_embeddings`` of the model's config, lowered by ``max_context:`` on the entry."""
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None)
    if value is None:  # multimodal configs keep it on their text config
        value = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
    limit = spec.max_context
    candidates = [int(v) for v in (value, limit) if isinstance(v, int) and v > 0]
    return min(candidates) if candidates else None


def _tokens_until_stop(tokenizer: Any, tokens: list[int], stops: Sequence[str]) -> int:
    """How many tokens it took to produce the first stop string (generation stops right there).

    A binary search over prefixes: once a prefix's text holds a stop string, every longer one does.
    """
    low, high = 1, len(tokens)
    while low < high:
        middle = (low + high) // 2
        if find_stop(tokenizer.decode(tokens[:middle], skip_special_tokens=True), stops) is None:
            low = middle + 1
        else:
            high = middle
    return high


def _lift_sampling_defaults(generation_config: Any) -> dict[str, Any]:
    defaults = {}
    for key in _SAMPLING_KEYS:
        value = getattr(generation_config, key, None)
        if value is not None:
            defaults[key] = value
        setattr(generation_config, key, None)
    return defaults


def _eos_ids(*values: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in values:
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)
