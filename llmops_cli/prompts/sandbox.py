"""The one Jinja sandbox every template renders in, with time and size bounds.

A prompt file or chain step is data (it may come from a pull request), so rendering it must not
hang or exhaust memory. On top of Jinja's :class:`~jinja2.sandbox.SandboxedEnvironment` (no
unsafe attributes, ``range()`` capped at 100,000 items):

- ``*``, ``+`` and ``**`` are checked before they run, so ``'a' * 10**10`` or ``10**10**10`` is
  refused instead of allocating gigabytes or computing for hours;
- output is produced as a stream and stopped past :data:`MAX_CHARS` characters;
- a watchdog thread stops a render that runs past :data:`TIMEOUT_S` seconds (nested loops),
  by raising :class:`RenderLimitExceeded` inside the rendering thread, whichever thread it is
  (CLI, chain, eval workers, server).

Both limits can be raised with ``LLMOPS_TEMPLATE_TIMEOUT_S`` and ``LLMOPS_TEMPLATE_MAX_CHARS``.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT_S = 2.0
MAX_CHARS = 1_000_000
_MAX_INT_BITS = 64 * 1024  # ints beyond ~20,000 decimal digits have no place in a prompt


class RenderLimitExceeded(Exception):
    """A render went past a bound; ``limit`` names it for the message."""

    def __init__(self, what: str, limit: str) -> None:
        super().__init__(what)
        self.what = what
        self.limit = limit


def timeout_s() -> float:
    return _env_number("LLMOPS_TEMPLATE_TIMEOUT_S", TIMEOUT_S)


def max_chars() -> int:
    return int(_env_number("LLMOPS_TEMPLATE_MAX_CHARS", MAX_CHARS))


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def _too_large(size: int, unit: str = "characters") -> RenderLimitExceeded:
    limit = max_chars()
    return RenderLimitExceeded(
        f"the template builds a value of {size:,} {unit}, more than the {limit:,} characters a render may produce",
        f"{limit:,} characters; LLMOPS_TEMPLATE_MAX_CHARS raises it",
    )


def _unit(value: Any) -> str:
    return "characters" if isinstance(value, str) else "bytes" if isinstance(value, bytes) else "items"


def _sized(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if _sized(seq) and isinstance(times, int) and len(seq) * max(times, 0) > max_chars():
                raise _too_large(len(seq) * times, _unit(seq))
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise RenderLimitExceeded("the template multiplies numbers too large for a prompt", "integers of 64 Kibit")
    elif operator == "+":
        if _sized(left) and _sized(right) and len(left) + len(right) > max_chars():
            raise _too_large(len(left) + len(right), _unit(left))
    elif operator == "**" and _power_too_big(left, right):
        raise RenderLimitExceeded(
            "the template raises a number to a power too large for a prompt", "integers of 64 Kibit"
        )


def _power_too_big(base: Any, exponent: Any) -> bool:
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) <= 1:
        return False  # 0 ** n and 1 ** n stay small; floats overflow to an error on their own
    return exponent * base.bit_length() > _MAX_INT_BITS


@cache
def environment() -> Any:
    """The sandboxed, strict Jinja environment (prompts and chain steps share it)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    class BoundedSandbox(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "+", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

    return BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def render_bounded(template: Any, values: Mapping[str, Any]) -> str:
    """``template.render(values)`` within the time and size bounds (raises :class:`RenderLimitExceeded`)."""

    def produce() -> str:
        limit, size, parts = max_chars(), 0, []
        for chunk in template.generate(values):
            size += len(chunk)
            if size > limit:
                raise _too_large(size)
            parts.append(chunk)
        return "".join(parts)

    return run_bounded(produce)


def run_bounded(fn: Callable[[], T]) -> T:
    """Run ``fn`` in this thread, stopped with :class:`RenderLimitExceeded` after :func:`timeout_s`."""
    seconds = timeout_s()
    try:
        with _WATCHDOG.watch(seconds):
            return fn()
    except MemoryError:
        raise RenderLimitExceeded(
            "the template needed more memory than this machine has", "the memory available"
        ) from None


class _Watch:
    def __init__(self, thread_id: int, deadline: float) -> None:
        self.thread_id, self.deadline = thread_id, deadline
        self.active, self.fired = True, False


class _Watchdog:
    """One daemon thread that interrupts renders past their deadline."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float) -> _Guard:
        return _Guard(self, seconds)

    def _add(self, watch: _Watch) -> None:
        with self._lock:
            heapq.heappush(self._heap, (watch.deadline, next(self._counter), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llmops-template-watchdog", daemon=True)
                self._thread.start()
            self._lock.notify()

    def _finish(self, watch: _Watch) -> None:
        with self._lock:
            watch.active = False
            if watch.fired:  # raised already, or still pending: make sure it cannot land later
                _set_async_exc(watch.thread_id, None)

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and not self._heap[0][2].active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._lock.wait()
                    continue
                deadline, _n, watch = self._heap[0]
                now = time.monotonic()
                if now < deadline:
                    self._lock.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
                watch.fired = True
                _set_async_exc(watch.thread_id, _Timeout)


class _Guard:
    def __init__(self, dog: _Watchdog, seconds: float) -> None:
        self.dog, self.seconds = dog, seconds
        self.watch: _Watch | None = None

    def __enter__(self) -> None:
        self.watch = _Watch(threading.get_ident(), time.monotonic() + self.seconds)
        self.dog._add(self.watch)

    def __exit__(self, kind: Any, error: Any, _tb: Any) -> None:
        assert self.watch is not None
        with contextlib.suppress(_Timeout):  # delivered just as the render ended
            self.dog._finish(self.watch)
        if kind is _Timeout or (error is not None and isinstance(error, _Timeout)):
            raise RenderLimitExceeded(
                f"the template ran for more than {self.seconds:g} s (a loop that never ends, or one far too long)",
                f"{self.seconds:g} s; LLMOPS_TEMPLATE_TIMEOUT_S raises it",
            ) from None


class _Timeout(BaseException):
    """Raised asynchronously in a rendering thread; a BaseException so templates cannot catch it."""


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    setter = getattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc", None)
    if setter is not None:
        setter(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None)


_WATCHDOG = _Watchdog()
