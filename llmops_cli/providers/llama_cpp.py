"""Text generation on the llama.cpp engine (``llama-cpp-python``) from a GGUF file.

Parallel slots: the provider holds ``parallel`` llama.cpp contexts over the same memory-mapped
weights (the OS shares the pages; each slot only adds its own KV cache). Concurrent callers (a
server's requests, eval workers) each take a free slot, so up to ``parallel`` requests decode at
once and a new request starts the moment a slot frees up, without waiting for a batch to finish.
The CPUs this process may use are split between the slots (one thread each on 2 cores): slots
never wait for each other at a barrier, which is what keeps throughput up on a shared machine.

Prefix reuse: each slot keeps the KV cache of its last prompt, and a request goes to the free slot
whose cached tokens share the longest prefix with its prompt, so a shared system prompt or few-shot
block is evaluated once per slot, not once per request.

Prompts are rendered with the model's chat template (the ``chat_template:`` override, else the one in
the GGUF's metadata) by llama-cpp-python's Jinja2 formatter, which follows transformers' rendering.
Greedy decoding at temperature 0; sampling is seeded per request when a seed is given (llama.cpp's
seed is 32-bit: the seed modulo 2**32 - 1, since 2**32 - 1 itself means "random"). Stop strings
are cut by llama.cpp (a stop string is never streamed out in part).

The context window is the slots' ``n_ctx``: :meth:`LlamaCppProvider.check` refuses a prompt that does
not fit (or cuts it, when the request sets ``truncate_prompt_tokens``), and llama.cpp stops
generating when the context is full. A request whose ``cancel`` event is set stops at its next token.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.engines import llama_cpp as engine
from llmops_cli.errors import UsageError
from llmops_cli.generation import GenerationParams, GenerationRequest, GenerationResult, Message, fit_prompt
from llmops_cli.providers.common import ProgressCallback, check_messages, transcript

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec

DEFAULT_CONTEXT = 4096  # tokens per slot unless max_context says otherwise (capped by the model's own)
SEED_MODULUS = 2**32 - 1  # llama.cpp seeds are uint32 and 0xFFFFFFFF means "pick one at random"


@dataclass
class _Slot:
    llm: Any
    tokens: list[int] = field(default_factory=list)  # what its KV cache holds (the last prompt)


class LlamaCppProvider:
    """A :class:`~llmops_cli.generation.Provider` over a GGUF file on llama.cpp.

    ``concurrency`` tells batchers how many requests to hand over at once (one per slot), and
    ``preferred_batch`` that a slot takes one request at a time.
    """

    engine = engine.ENGINE
    preferred_batch = 1

    def __init__(
        self,
        spec: ModelSpec,
        gguf_file: Path,
        *,
        adapter_path: Path | None = None,
        base_folder: Callable[[], Path] | None = None,
        name: str | None = None,
        parallel: int | None = None,
        threads: int | None = None,
        context: int | None = None,
    ) -> None:
        from llmops_cli.engines.cpus import usable_cpus

        self.spec = spec
        self.gguf_file = gguf_file
        self.adapter_path = adapter_path
        self._base_folder = base_folder  # the base's HF config, for converting the adapter to GGUF
        self.lora_file: Path | None = None
        self.name = name or (spec.name if adapter_path is None else f"{spec.name}+{adapter_path.name}")
        from llmops_cli.engines.cpus import THREADS_ENV

        self.cpus = usable_cpus()
        self.parallel = max(1, int(parallel or spec.parallel or self.cpus))
        fixed = threads or spec.threads or os.environ.get(THREADS_ENV, "").strip() or None
        # One thread per slot by default. Measured on SmolLM2-135M, 2 cores: a request alone decodes at
        # 37 tokens/s on one thread and 14-17 on two with OpenMP waiting passively (a barrier per op
        # costs more than the op); spinning instead is what collapses under a shared machine's load.
        self.threads = max(1, int(fixed)) if fixed else max(1, self.cpus // self.parallel)
        # Prompt processing is a few big matrix products, where threads pay off even waiting passively
        # (1 thread: 150 prompt tokens/s, 2: 245-264, same machine): all the CPUs, unless fixed.
        self.batch_threads = max(1, int(fixed)) if fixed else self.cpus
        self.context = context or spec.max_context
        self.batch_size = self.parallel  # what eval and serve read to size their batches
        self._lock = threading.Lock()
        self._ready = False  # the slots exist
        self._free: list[_Slot] = []
        self._free_cond = threading.Condition()
        self._formatter: Any = None
        self._vocab: Any = None  # a vocab-only llama.cpp model: metadata and tokenizer
        self._template: str | None = None
        self._eos: str = ""

    @property
    def concurrency(self) -> int:
        return self.parallel

    @property
    def loaded(self) -> bool:
        return self._ready

    def with_batch_size(self, batch_size: int) -> LlamaCppProvider:
        return self  # slots, not batches: the batch size of callers does not change anything here

    # --- loading -------------------------------------------------------------------------------

    def load(self) -> None:
        """Create the slots now (servers warm up at start); later calls are free."""
        with self._lock:
            if self._ready:
                return
            engine.require(f"Running model '{self.spec.name}' on llama.cpp")
            if not self.gguf_file.is_file():
                raise UsageError(f"No GGUF file at {self.gguf_file} for model '{self.spec.name}'.")
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before llama.cpp starts its OpenMP threads
            if self.adapter_path is not None and self.lora_file is None:
                from llmops_cli.engines.gguf import lora_to_gguf

                if self._base_folder is None:
                    raise UsageError(f"No base model configuration to convert adapter {self.adapter_path} with.")
                self.lora_file = lora_to_gguf(self.adapter_path, self._base_folder())
            with engine.native_stderr():
                self._vocab = self._llama(vocab_only=True)  # metadata and tokenizer, no context
            self._setup_template(self._vocab)
            slots = [_Slot(self._new_context()) for _ in range(self.parallel)]
            with self._free_cond:
                self._free = list(slots)
            self._ready = True

    @property
    def window(self) -> int:
        """Tokens per slot context (what a prompt plus its answer must fit in)."""
        return int(self.context or min(DEFAULT_CONTEXT, _trained_context(self._vocab) or DEFAULT_CONTEXT))

    def _new_context(self) -> Any:
        n_ctx = self.window
        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "n_threads": self.threads, "n_threads_batch": self.batch_threads}
        if self.lora_file is not None:
            kwargs["lora_path"] = str(self.lora_file)
        with engine.native_stderr():
            return self._llama(n_batch=512, **kwargs)

    def _llama(self, **kwargs: Any) -> Any:
        from llama_cpp import Llama

        return Llama(model_path=str(self.gguf_file), verbose=False, **kwargs)

    def _setup_template(self, llm: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        metadata = llm.metadata or {}
        template = self.spec.chat_template or metadata.get("tokenizer.chat_template")
        eos = _token_text(llm, metadata.get("tokenizer.ggml.eos_token_id"))
        bos = _token_text(llm, metadata.get("tokenizer.ggml.bos_token_id"))
        self._eos = eos
        self._template = template
        if template:
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    def forget_cache(self) -> None:
        """Drop every idle slot's KV cache (the next request evaluates its whole prompt)."""
        with self._free_cond:
            for slot in self._free:
                slot.llm.reset()
                slot.tokens = []

    # --- rendering ------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees for ``messages``."""
        check_messages(messages)
        self.load()
        if self._formatter is None:
            return transcript(messages)
        try:
            return str(self._formatter(messages=list(messages)).prompt)
        except Exception as error:  # jinja2 TemplateError, or the template's raise_exception()
            raise UsageError(
                f"The chat template of model '{self.spec.name}' rejected the messages: {error}",
                hint="Adjust the messages (some templates forbid a system role) or set 'chat_template:'.",
            ) from error

    # --- generation -----------------------------------------------------------------------------

    def generate(
        self, requests: list[GenerationRequest], *, progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        """One result per request, in order; up to ``parallel`` of them run at once."""
        if not requests:
            return []
        self.load()
        prompts = [self.render(r.messages) for r in requests]
        if len(requests) == 1:
            results = [self._complete(prompts[0], requests[0])]
            if progress is not None:
                progress(1, 1)
            return results
        done = 0
        done_lock = threading.Lock()

        def run(index: int) -> GenerationResult:
            nonlocal done
            result = self._complete(prompts[index], requests[index])
            if progress is not None:
                with done_lock:
                    done += 1
                    progress(done, len(requests))
            return result

        with ThreadPoolExecutor(max_workers=min(self.parallel, len(requests)), thread_name_prefix="llama-slot") as pool:
            return list(pool.map(run, range(len(requests))))

    def check(self, request: GenerationRequest) -> None:
        """Raise the UsageError ``generate`` would raise for this request alone (prompt too long...)."""
        self.load()
        prompt = self.render(request.messages)
        with self._free_cond:  # the vocab model is shared; tokenizing happens under this lock elsewhere too
            tokens = self._vocab.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        fit_prompt(tokens, request.params, self.window, self.name)

    def stream(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Generator[str, None, GenerationResult]:
        """Text pieces as llama.cpp produces them; the generator's return value is the full result.

        Closing the generator (or setting ``cancel``) stops decoding at the next token and frees the slot.
        """
        self.load()
        prompt = self.render(request.messages)
        params = request.params
        started = time.perf_counter()
        text, finish = "", "stop"
        with self._slot(prompt, params) as (slot, tokens):
            pieces = slot.llm.create_completion(tokens, stream=True, **_sampling(params))
            try:
                for chunk in pieces:
                    choice = chunk["choices"][0]
                    piece = choice.get("text") or ""
                    if piece:
                        text += piece
                        yield piece
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
            finally:
                pieces.close()
                slot.tokens = tokens
            completion = len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0
        return GenerationResult(
            text=text,
            prompt_tokens=len(tokens),
            completion_tokens=completion,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=finish,
            model=self.name,
        )

    def _complete(self, prompt: str, request: GenerationRequest) -> GenerationResult:
        if request.cancel is not None:  # stoppable: decode token by token, watching the cancel flag
            pieces = self.stream(request, request.cancel)
            while True:
                try:
                    next(pieces)
                except StopIteration as done:
                    result: GenerationResult = done.value
                    if result.finish_reason not in ("stop", "length"):
                        result.finish_reason = "stop"
                    return result
        params = request.params
        started = time.perf_counter()
        with self._slot(prompt, params) as (slot, tokens):
            try:
                out = slot.llm.create_completion(tokens, **_sampling(params))
            finally:
                slot.tokens = tokens
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return GenerationResult(
            text=choice.get("text") or "",
            prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            model=self.name,
        )

    @contextlib.contextmanager
    def _slot(self, prompt: str, params: GenerationParams) -> Iterator[tuple[_Slot, list[int]]]:
        """A free slot for ``prompt`` (the one whose cache shares the longest prefix) and its tokens
        (cut as ``params`` asks; a UsageError when they do not fit the slot's context)."""
        with self._free_cond:
            tokens = self._vocab.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        tokens = fit_prompt(tokens, params, self.window, self.name)
        with self._free_cond:
            while not self._free:
                self._free_cond.wait()
            best = max(range(len(self._free)), key=lambda i: _common_prefix(self._free[i].tokens, tokens))
            slot = self._free.pop(best)
        try:
            yield slot, tokens
        except BaseException:
            slot.tokens = []  # the cache is in an unknown state after an error
            raise
        finally:
            with self._free_cond:
                self._free.append(slot)
                self._free_cond.notify()


def _sampling(params: GenerationParams) -> dict[str, Any]:
    """llama-cpp-python's arguments for ``params``, with transformers' meaning of each knob.

    llama-cpp-python defaults to top_k 40 and min_p 0.05; transformers (and our local provider)
    apply neither unless asked, so both are turned off here unless the request sets top_k.
    """
    sampling: dict[str, Any] = {
        "max_tokens": params.max_new_tokens,
        "stop": list(params.stop) or None,
        "temperature": float(params.temperature),
        "top_p": float(params.top_p),
        "top_k": int(params.top_k or 0),
        "min_p": 0.0,
        "repeat_penalty": float(params.repetition_penalty or 1.0),
    }
    if params.temperature > 0 and params.seed is not None:
        sampling["seed"] = int(params.seed) % SEED_MODULUS
    return sampling


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _trained_context(llm: Any) -> int | None:
    metadata = llm.metadata or {}
    value = metadata.get(f"{metadata.get('general.architecture', 'llama')}.context_length")
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _token_text(llm: Any, token_id: Any) -> str:
    try:
        return llm.detokenize([int(token_id)], special=True).decode("utf-8", errors="replace")
    except (TypeError, ValueError):
        return ""
