"""Progress that shows in a terminal and in a piped CI log alike.

A rich live display draws nothing while stderr is not a terminal (a CI log, ``| tee``): a long
step looked dead for its whole length. :func:`live_progress` and :func:`live_status` wrap rich's
``Progress`` and ``Status``; when stderr is not a terminal, a daemon thread prints one plain line per
unfinished task every ``LLMOPS_PROGRESS_INTERVAL`` seconds (default 10), with the count, the
percentage, the elapsed time and an ETA, and one closing line per task when the display ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from llmops_cli.cli import output

DEFAULT_INTERVAL_S = 10.0
INTERVAL_ENV = "LLMOPS_PROGRESS_INTERVAL"


def interval_s() -> float:
    """Seconds between plain progress lines (``LLMOPS_PROGRESS_INTERVAL``, default 10)."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


def clock(seconds: float | None) -> str:
    """``1:05`` for 65 s, ``1:02:03`` past an hour, ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def task_line(task: Any, *, since: float | None = None, closing: bool = False) -> str:
    """One plain line for a rich ``Task``: description, count, percentage, elapsed, ETA, fields.

    ``since`` (a ``time.monotonic()`` value) gives the elapsed time of a task not started yet.
    """
    from rich.text import Text

    description = Text.from_markup(str(task.description)).plain.strip()
    elapsed = task.elapsed if task.started else (time.monotonic() - since if since is not None else 0.0)
    elapsed = elapsed or 0.0
    parts: list[str] = []
    if task.total or task.completed:
        parts.append(count_text(task.completed, task.total))
    parts.append(f"elapsed {clock(elapsed)}")
    if not closing and task.total and task.completed:
        remaining = task.time_remaining
        if remaining is None and elapsed > 0:
            remaining = elapsed * (task.total - task.completed) / task.completed
        parts.append(f"ETA {clock(remaining)}")
    extras = [f"{k} {v}" for k, v in task.fields.items() if isinstance(v, str | int | float) and v not in ("", "-")]
    return f"{description or 'working'}: " + ", ".join(parts + extras)


def count_text(done: float, total: float | None) -> str:
    """``12/40 (30%)`` with a total, else ``12``."""
    if total:
        return f"{_count(done)}/{_count(total)} ({100 * done / total:.0f}%)"
    return _count(done)


def _count(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.1f}"


class _Ticker:
    """Prints ``lines()`` every ``interval`` seconds from a daemon thread until stopped."""

    def __init__(self, console: Any, lines: Callable[[], list[str]], interval: float) -> None:
        self._console, self._lines, self._interval = console, lines, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmops-progress", daemon=True)

    def __enter__(self) -> _Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for line in self._lines():
                self._console.print(line, soft_wrap=True, markup=False, highlight=False)


@contextlib.contextmanager
def live_progress(*columns: Any, enabled: bool = True, transient: bool = True) -> Iterator[Any]:
    """A rich ``Progress`` over ``columns`` on stderr that also reports in a piped log.

    Yields the ``Progress``; add tasks and update them as usual. Disabled (``--quiet``, ``--json``):
    nothing is printed either way.
    """
    from rich.progress import Progress

    console = output.err_console()
    transient = transient or not console.is_terminal  # in a log, the closing plain lines replace the bar
    with Progress(*columns, console=console, disable=not enabled, transient=transient) as bar:
        if not enabled or console.is_terminal:
            yield bar
            return

        began = time.monotonic()

        def lines() -> list[str]:
            return [task_line(t, since=began) for t in bar.tasks if t.visible and not t.finished]

        with _Ticker(console, lines, interval_s()):
            yield bar
        for task in bar.tasks:
            if task.visible and task.started:
                console.print(task_line(task, closing=True), soft_wrap=True, markup=False, highlight=False)


class PlainStatus:
    """What :func:`live_status` yields: ``update(text)`` as on rich's ``Status``."""

    def __init__(self, text: str, status: Any | None, console: Any, plain: bool) -> None:
        self.text = text
        self.started = time.monotonic()
        self._status, self._console, self._plain = status, console, plain

    def update(self, text: str) -> None:
        changed = text != self.text
        self.text = text
        if self._status is not None:
            self._status.update(text)
        if self._plain and changed:
            self._console.print(self.line(), soft_wrap=True, markup=False, highlight=False)

    def line(self) -> str:
        from rich.text import Text

        return f"{Text.from_markup(self.text).plain}, elapsed {clock(time.monotonic() - self.started)}"


@contextlib.contextmanager
def live_status(text: str, *, enabled: bool = True) -> Iterator[PlainStatus]:
    """A rich spinner with ``text`` on stderr; in a piped log, a plain line on each change and
    every ``LLMOPS_PROGRESS_INTERVAL`` seconds."""
    console = output.err_console()
    if not enabled:
        yield PlainStatus(text, None, console, plain=False)
        return
    if console.is_terminal:
        with console.status(text, spinner="dots") as status:
            yield PlainStatus(text, status, console, plain=False)
        return
    plain = PlainStatus(text, None, console, plain=True)
    console.print(plain.line(), soft_wrap=True, markup=False, highlight=False)
    with _Ticker(console, lambda: [plain.line()], interval_s()):
        yield plain
