"""Token streaming for ``stream: true``: text pieces as the model produces them.

For a local transformers model the text really is incremental: ``model.generate`` runs in a worker
thread with a ``TextIteratorStreamer`` and this iterator hands out the decoded text as it arrives,
holding back the last few characters while they could still turn into a stop string. Such a
request runs alone (batch of one) under the model's lock, so it does not share a batch with others.
A provider with a public ``stream(request, cancel)`` generator (llama.cpp) streams the same way
from one of its slots; the generator's return value carries the usage. For any other provider (an
OpenAI-compatible endpoint, a test double) the request goes through the batcher and the finished
text is handed out in word-sized pieces.

Closing the iterator early (the client went away) stops the generation at the next token.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Generator, Iterator
from typing import Any

from llmops_cli.generation import GenerationRequest, Provider
from llmops_cli.providers.common import find_stop

STREAM_TIMEOUT_S = 600.0  # longest wait for the next piece (includes waiting for the model's lock)
_PIECES = re.compile(r"\s*\S+|\s+$")


class TextStream:
    """Iterate to get text deltas; ``prompt_tokens``, ``completion_tokens`` and ``finish_reason`` are
    set once the iteration is over (``finish_reason`` is ``cancelled`` when it was closed early).
    ``text`` is everything handed out so far."""

    def __init__(self, provider: Provider, request: GenerationRequest) -> None:
        self.provider = provider
        self.request = request
        self.text = ""
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason = "stop"
        self.incremental = _local_inner(provider) is not None or _streaming_inner(provider) is not None
        self._stopped_by_string = False
        self.closed_early = False  # close() came before the last piece (the client went away)
        self._cancel = threading.Event()
        self._done = threading.Event()  # set when the generation and its counts are finished
        self._pieces = self._run()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop generating (at the next token) and wait until the counts are final. Safe from any thread."""
        if not self._done.is_set():
            self.closed_early = True
        self._cancel.set()
        try:
            self._pieces.close()
        except ValueError:  # another thread is inside next(): the cancel flag ends that call within a token
            self._done.wait(STREAM_TIMEOUT_S)

    def _run(self) -> Generator[str, None, None]:
        local = _local_inner(self.provider)
        streaming = _streaming_inner(self.provider)
        try:
            if local is not None:
                yield from self._incremental(local)
            elif streaming is not None:
                yield from self._from_provider(streaming)
            else:
                yield from self._whole()
        finally:
            if self.closed_early:
                self.finish_reason = "cancelled"
            self._done.set()

    def _whole(self) -> Iterator[str]:
        (result,) = self.provider.generate([self.request])
        self.prompt_tokens, self.completion_tokens = result.prompt_tokens, result.completion_tokens
        self.finish_reason = result.finish_reason
        for piece in _PIECES.findall(result.text):
            self.text += piece
            yield piece

    def _from_provider(self, inner: Any) -> Iterator[str]:
        """Pieces from the provider's own ``stream`` generator; its return value is the result."""
        pieces = inner.stream(self.request, self._cancel)
        finished = False
        try:
            while True:
                try:
                    piece = next(pieces)
                except StopIteration as done:
                    finished = True
                    self._take_counts(done.value)
                    return
                self.text += piece
                yield piece
        finally:
            if not finished:  # the client went away: the provider stops at its next cancel check
                self._cancel.set()
                try:
                    while True:
                        next(pieces)
                except StopIteration as done:
                    self._take_counts(done.value)
                except Exception:  # noqa: BLE001 - the stream is being abandoned; its counts are best effort
                    pass
            pieces.close()  # frees the slot in any case

    def _take_counts(self, result: Any) -> None:
        self.prompt_tokens, self.completion_tokens = result.prompt_tokens, result.completion_tokens
        if result.finish_reason != "cancelled":
            self.finish_reason = result.finish_reason

    def _incremental(self, local: Any) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        tokenizer = local.tokenizer()
        ids = local.encode(self.request)  # cut as asked, or a UsageError when it does not fit the window
        encoded = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
        self.prompt_tokens = len(ids)
        window = _internals(local).window
        if window is not None and len(ids) + self.request.params.max_new_tokens > window:
            limited = self.request.params.merged({"max_new_tokens": window - len(ids)})
            self.request = GenerationRequest(self.request.messages, limited, self.request.cancel)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_TIMEOUT_S)
        outcome: dict[str, Any] = {}
        worker = threading.Thread(
            target=_generate, args=(local, encoded, self.request, streamer, self._cancel, outcome), daemon=True
        )
        worker.start()
        try:
            yield from self._hold_back_stops(streamer)
        finally:  # also when the consumer closes us early: stop the model, then count what it made
            self._cancel.set()
            worker.join()
            if "output" in outcome:
                self._count(local, outcome["output"][0, self.prompt_tokens :].tolist())
        if "error" in outcome:
            raise outcome["error"]

    def _hold_back_stops(self, streamer: Any) -> Iterator[str]:
        """Text pieces from ``streamer``, never emitting a stop string or a prefix of one."""
        stops = self.request.params.stop
        hold = max((len(s) for s in stops), default=1) - 1
        produced, emitted = "", 0
        for piece in streamer:
            produced += piece
            cut = find_stop(produced, stops)
            if cut is not None:
                self._stopped_by_string = True
                produced = produced[:cut]
                self._cancel.set()
                break
            safe = len(produced) - hold
            if safe > emitted:
                self.text = produced[:safe]
                yield produced[emitted:safe]
                emitted = safe
        if len(produced) > emitted:
            self.text = produced
            yield produced[emitted:]

    def _count(self, local: Any, generated: list[int]) -> None:
        eos_ids = _internals(local).eos_ids
        end = next((i for i, token in enumerate(generated) if token in eos_ids), None)
        # Generation stops at the token that completes a stop string, so the count is exact.
        self.completion_tokens = len(generated) if end is None else end + 1
        at_length = end is None and self.completion_tokens >= self.request.params.max_new_tokens
        self.finish_reason = "length" if at_length and not self._stopped_by_string else "stop"


def _generate(
    local: Any, encoded: Any, request: GenerationRequest, streamer: Any, cancel: threading.Event, out: dict[str, Any]
) -> None:
    """Run ``generate`` with ``streamer`` under the model's lock (the worker thread's body)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    internals = _internals(local)
    params = request.params
    try:
        with internals.lock, torch.inference_mode():
            model = internals.model
            kwargs: dict[str, Any] = {
                **{k: v.to(model.device) for k, v in encoded.items()},
                "generation_config": local._generation_config(params),
                "streamer": streamer,
                "stopping_criteria": StoppingCriteriaList([Cancelled()]),
            }
            if params.stop:
                kwargs["tokenizer"] = internals.tokenizer  # transformers needs it for stop_strings
            if params.temperature > 0 and params.seed is not None:
                with torch.random.fork_rng(devices=[]):  # seeded like LocalProvider: caller's RNG untouched
                    torch.manual_seed(params.seed)
                    out["output"] = model.generate(**kwargs)
            else:
                out["output"] = model.generate(**kwargs)
    except BaseException as error:
        out["error"] = error
        streamer.end()  # wake the consumer; it re-raises the error


def _local_inner(provider: Provider) -> Any:
    """The LocalProvider behind ``provider`` (a batcher's inner), or None for other providers."""
    from llmops_cli.providers.local import LocalProvider

    inner = getattr(provider, "inner", provider)
    return inner if isinstance(inner, LocalProvider) else None


def _streaming_inner(provider: Provider) -> Any:
    """The provider behind ``provider`` when it streams by itself (a public ``stream`` method)."""
    inner = getattr(provider, "inner", provider)
    return inner if callable(getattr(inner, "stream", None)) else None


def _internals(local: Any) -> Any:
    """The loaded model, lock, tokenizer and EOS ids of a LocalProvider.

    LocalProvider has no streaming API yet, so this reads its private ``_loaded`` (and calls its
    ``_generation_config``) in exactly these two places; a public ``LocalProvider.stream`` would
    replace both.
    """
    return local._loaded
