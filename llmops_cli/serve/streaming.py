"""Token streaming for ``stream: true``: text pieces as the model produces them.

A provider with a public ``stream(request, cancel)`` generator (a local transformers model, llama.cpp,
an OpenAI-compatible upstream) streams for real: it hands out the text as it is produced and the
generator's return value carries the usage. A local model's request then runs alone (batch of one)
under the model's lock, so it does not share a batch with others. For any other provider (a test
double) the request goes through the batcher and the finished text is handed out in word-sized pieces.

Closing the iterator early (the client went away) stops the generation at the next token.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Generator, Iterator
from typing import Any

from llmops_cli.generation import GenerationRequest, Provider
from llmops_cli.providers.local_stream import STREAM_TIMEOUT_S

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
        self.incremental = _streaming_inner(provider) is not None
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
        streaming = _streaming_inner(self.provider)
        try:
            if streaming is not None:
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
                except BaseException:  # the provider failed (prompt too long...): nothing left to drain
                    finished = True
                    self.prompt_tokens = _prompt_tokens(inner, self.request)  # the log still counts the prompt
                    raise
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


def _prompt_tokens(provider: Any, request: GenerationRequest) -> int:
    """The prompt's token count when the provider can say it (0 when it cannot, or does not fit)."""
    encode = getattr(provider, "encode", None)
    try:
        return len(encode(request)) if callable(encode) else 0
    except Exception:  # noqa: BLE001 - a count for the log; the failure itself is being raised
        return 0


def _streaming_inner(provider: Provider) -> Any:
    """The provider behind ``provider`` when it streams by itself (a public ``stream`` method)."""
    inner = getattr(provider, "inner", provider)
    return inner if callable(getattr(inner, "stream", None)) else None
