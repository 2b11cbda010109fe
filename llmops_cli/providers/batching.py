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
:class:`Overloaded` at once, so a server answers 429 instead of queueing without limit.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from llmops_cli.errors import UnavailableError
from llmops_cli.generation import GenerationRequest, GenerationResult, Provider


class Overloaded(UnavailableError):
    """Too many requests are already waiting for the model; retry later."""


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
        for item in items:
            item.done.wait()
        for item in items:
            if item.error is not None:
                raise item.error
        return [item.result for item in items if item.result is not None]

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
            results = self.inner.generate([item.request for item in batch])
            for item, result in zip(batch, results, strict=True):
                item.result = result
        except BaseException as error:  # delivered to every caller of this batch; the thread lives on
            for item in batch:
                item.error = error
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
