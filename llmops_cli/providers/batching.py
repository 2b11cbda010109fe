"""Micro-batching: many threads call ``generate`` one request at a time, the model sees batches.

A local model generates 8 prompts in one ``generate`` call in little more time than one (see
``benchmarks/generation_batching.py``), but chains, eval workers and server requests each hold a
single prompt. :class:`BatchingProvider` sits between them and the real provider: callers block
on their own request, a dispatcher thread gathers what is waiting into one call.

When does a batch leave?

* it is full (``max_batch``);
* every registered client is waiting (eval workers register with :meth:`BatchingProvider.client`,
  so the dispatcher knows nobody else is about to submit and does not wait at all);
* with no registered clients (a server), ``max_wait_ms`` after its first request arrived.

Providers that run several requests at once themselves (llama.cpp's parallel slots) say so with
a ``concurrency`` attribute and a ``preferred_batch`` size: the dispatcher then keeps up to
``concurrency`` calls of ``preferred_batch`` requests in flight, each in its own thread, and hands
the next waiting request over the moment a call returns (continuous admission, no batch barrier).

Admission is bounded: with ``max_pending`` requests already queued, ``generate`` raises
:class:`Overloaded` at once, so a server answers 429 instead of queueing without limit. A call
with more requests than ``max_pending`` could never be admitted: it is a UsageError (400), not 429.

One request never fails its batch-mates: each request is first checked on its own (the inner
provider's ``check(request)``, e.g. its prompt against the context window), and when a batch of
several raises anyway, its requests are run again one by one so only the bad one gets the error.

A request whose ``cancel`` event is set (its client left) is taken out of the queue if it has not
started; one already in a batch is stopped by the inner provider at its next token.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from llmops_cli.errors import LlmopsError, UnavailableError, UsageError
from llmops_cli.generation import GenerationRequest, GenerationResult, Provider


class Overloaded(UnavailableError):
    """Too many requests are already waiting for the model; retry later."""


class Cancelled(LlmopsError):
    """The request was cancelled (its caller left) before it was generated."""


CANCEL_POLL_S = 0.1  # how often a waiting caller looks at its cancel flags


@dataclass
class _Call:
    """One ``generate`` call; its caller counts as waiting until its last request is answered."""

    remaining: int


@dataclass
class _Pending:
    request: GenerationRequest
    call: _Call
    done: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None
    error: BaseException | None = None


class BatchingProvider:
    """A thread-safe :class:`~llmops_cli.generation.Provider` that merges concurrent calls."""

    def __init__(
        self, inner: Provider, *, max_batch: int = 8, max_wait_ms: float = 10.0, max_pending: int = 64
    ) -> None:
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be at least 1")
        self.inner = inner
        self.name = inner.name
        preferred = getattr(inner, "preferred_batch", None)
        self.max_batch = min(max_batch, int(preferred)) if preferred else max_batch
        self.concurrency = max(1, int(getattr(inner, "concurrency", 1) or 1))
        self._in_flight = threading.Semaphore(self.concurrency)
        self.max_wait = max_wait_ms / 1000.0
        self.max_pending = max_pending
        self.batches = 0  # how many inner calls were made (tests and benchmarks read it)
        self._queue: list[_Pending] = []
        self._clients = 0
        self._waiting_clients = 0
        self._first_arrival = 0.0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name=f"batcher-{self.name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    @contextlib.contextmanager
    def client(self) -> Iterator[None]:
        """Mark the calling worker as a client for its duration (see the module docstring)."""
        with self._cond:
            self._clients += 1
        try:
            yield
        finally:
            with self._cond:
                self._clients -= 1
                self._cond.notify_all()  # one fewer client may be what a waiting batch needed

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        if len(requests) > self.max_pending:
            raise UsageError(
                f"{len(requests)} generations in one request, but '{self.name}' takes at most "
                f"{self.max_pending} at once, so it could never be admitted.",
                hint="Send fewer prompts (or a smaller n) per request, or raise the server's max_concurrency.",
            )
        check = getattr(self.inner, "check", None)
        if callable(check):
            for request in requests:  # in the caller's thread, before anything is queued
                check(request)
        call = _Call(len(requests))
        items = [_Pending(r, call) for r in requests]
        with self._cond:
            if self._closed:
                raise UnavailableError(f"The batcher for '{self.name}' is closed.")
            if len(self._queue) + len(items) > self.max_pending:
                raise Overloaded(
                    f"{len(self._queue)} requests are already waiting for '{self.name}'.",
                    hint="Retry later, or raise the server's max_concurrency.",
                )
            if not self._queue:
                self._first_arrival = time.monotonic()
            self._queue.extend(items)
            self._waiting_clients += 1
            self._cond.notify_all()
        cancellable = any(item.request.cancel is not None for item in items)
        for item in items:
            while not item.done.wait(CANCEL_POLL_S if cancellable else None):
                if item.request.cancelled:
                    self._withdraw(item)
        for item in items:
            if item.error is not None:
                raise item.error
        return [item.result for item in items if item.result is not None]

    def _withdraw(self, item: _Pending) -> None:
        """Take a cancelled request out of the queue (no-op once a batch has it)."""
        with self._cond:
            if item not in self._queue:
                return
            self._queue.remove(item)
            item.error = Cancelled("The request was cancelled before it was generated.")
            item.call.remaining -= 1
            if item.call.remaining == 0:
                self._waiting_clients -= 1
            self._cond.notify_all()
        item.done.set()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    # --- the dispatcher thread ------------------------------------------------------------------

    def _ready(self) -> bool:
        if not self._queue:
            return False
        if len(self._queue) >= self.max_batch or self._closed:
            return True
        if self._clients:
            # Everyone who could add to this batch is already blocked on it.
            return self._waiting_clients >= self._clients
        return time.monotonic() - self._first_arrival >= self.max_wait

    def _dispatch(self) -> None:
        while True:
            self._in_flight.acquire()  # a free slot first: requests wait in the queue, counted as pending
            with self._cond:
                while not self._ready():
                    if self._closed and not self._queue:
                        self._in_flight.release()
                        return
                    timeout = None
                    if self._queue and not self._clients:
                        timeout = max(0.0, self.max_wait - (time.monotonic() - self._first_arrival))
                    self._cond.wait(timeout)
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                if self._queue:
                    self._first_arrival = time.monotonic()
            if self.concurrency == 1:
                self._run_and_release(batch)
            else:
                threading.Thread(
                    target=self._run_and_release, args=(batch,), name=f"slot-{self.name}", daemon=True
                ).start()

    def _run_and_release(self, batch: list[_Pending]) -> None:
        try:
            self._run(batch)
        finally:
            self._in_flight.release()

    def _run(self, batch: list[_Pending]) -> None:
        with self._cond:
            self.batches += 1
        try:
            self._answer(batch)
        finally:
            # The callers stop counting as waiting here, under the lock, not when their threads
            # wake up: otherwise the next batch would leave early, before they could submit again.
            with self._cond:
                for item in batch:
                    item.call.remaining -= 1
                    if item.call.remaining == 0:
                        self._waiting_clients -= 1
            for item in batch:
                item.done.set()

    def _answer(self, batch: list[_Pending]) -> None:
        """Results (or errors) for ``batch``; a failing batch of several is retried one by one."""
        try:
            results = self.inner.generate([item.request for item in batch])
            for item, result in zip(batch, results, strict=True):
                item.result = result
            return
        except BaseException as error:  # delivered to its callers; the thread lives on
            if len(batch) == 1 or not isinstance(error, Exception):
                for item in batch:
                    item.error = error
                return
        for item in batch:  # which request was it? each alone, so the others still get answers
            if item.request.cancelled:
                item.error = Cancelled("The request was cancelled before it was generated.")
                continue
            try:
                (item.result,) = self.inner.generate([item.request])
            except Exception as error:
                item.error = error
