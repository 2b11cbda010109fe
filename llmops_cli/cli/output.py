"""Rendering helpers. rich is imported lazily so ``llmops --help`` stays fast.

Results go to stdout, messages and errors to stderr; ``NO_COLOR`` is honoured by rich itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Collection, Iterator
from functools import cache
from typing import Any, Literal

from llmops_cli.cli.state import STATE
from llmops_cli.progress import ProgressFn
from llmops_cli.text import plural as plural  # "1 request" / "2 requests": use it for counts in messages


@cache
def console() -> Any:
    from rich.console import Console

    # Piped output (CI logs, `| less`) gets room for tables instead of rich's 80-column default.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
    return Console(highlight=False, soft_wrap=False, width=width)


@cache
def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def info(message: str) -> None:
    if not STATE.quiet:
        err_console().print(message)


def success(message: str) -> None:
    if not STATE.quiet:
        err_console().print(f"[green]✓[/green] {message}")


def warn(message: str) -> None:
    err_console().print(f"[yellow]warning:[/yellow] {message}")


def error(message: str, hint: str | None = None, details: list[str] | None = None) -> None:
    from rich.markup import escape

    con = err_console()
    con.print(f"[bold red]error:[/bold red] {escape(message)}")
    for line in details or []:
        con.print(f"  {escape(line)}")
    if hint:
        con.print(f"[dim]{escape(hint)}[/dim]")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    tbl = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        tbl.add_column(column, overflow="fold")
    for row in rows:
        tbl.add_row(*("" if v is None else str(v) for v in row))
    console().print(tbl)


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# What each core phase (llmops_cli.progress.ProgressFn) is called on screen; others show as named.
PHASES = {
    "plan": "collecting", "hash": "hashing", "write": "writing", "register": "registering",
    "unpack": "unpacking", "ready": "waiting for /ready", "tokenizer": "loading the tokenizer",
    "tokens": "counting tokens", "chunks": "chunks embedded", "load": "loading embedding model",
}  # fmt: skip


@contextlib.contextmanager
def progress(
    label: str,
    *,
    enabled: bool,
    style: Literal["bar", "bytes", "phases", "status"] = "bar",
    width: int | None = None,
    interleaved: bool = False,
    relabel: Collection[str] = (),
) -> Iterator[ProgressFn]:
    """Render a core function's ``(phase, done, total)`` calls on stderr (in a log: plain lines).

    ``bar``: one bar counting items, described ``LABEL: PHASE`` (just ``LABEL`` for the phase "");
    ``bytes``: the same, counting bytes; ``phases``: one bar per phase (``width`` pads descriptions;
    a new phase completes the earlier ones unless the core reports them ``interleaved``; a phase in
    ``relabel`` renames the latest bar while the core waits instead of adding one); ``status``: a
    spinner line with the phase and a percentage (seconds for ``ready``). Disabled: draws nothing.

    The bars appear once the work has run for :data:`PROGRESS_DELAY_S`: work that ends sooner (an
    unchanged ``llmops package`` re-run) draws no bar, which would only flicker, and does not pay
    for rich's live display (~25 ms); in a log it still gets its closing lines, the same text.
    """
    if style == "status":
        with _status_progress(label, enabled=enabled) as report:
            yield report
        return
    if not enabled:
        yield lambda _phase, _done, _total: None
        return
    bars = _DeferredBars(label, style, width, interleaved, relabel)
    try:
        yield bars.report
    except BaseException as exc:
        bars.close(exc)
        raise
    bars.close(None)


PROGRESS_DELAY_S = 0.5


class _DeferredBars:
    """``progress``'s bars, started by a timer (or the first report) after :data:`PROGRESS_DELAY_S`
    with every earlier report replayed; closed before that, only the closing lines of a log."""

    def __init__(self, label: str, style: str, width: int | None, interleaved: bool, relabel: Collection[str]) -> None:
        import threading
        import time

        self._args = (label, style, width, interleaved, relabel)
        self._started = time.monotonic()
        self._lock = threading.RLock()
        self._calls: list[tuple[str, int, int]] = []
        self._context: Any = None
        self._live: ProgressFn | None = None
        self._closed = False
        self._timer = threading.Timer(PROGRESS_DELAY_S, self._start)
        self._timer.daemon = True
        self._timer.start()

    def report(self, phase: str, done: int, total: int) -> None:
        import time

        with self._lock:
            if self._live is None:
                self._calls.append((phase, done, total))
                if len(self._calls) > 256:  # keep what a replay needs: each phase's first and last call
                    self._calls = _compact(self._calls)
                if time.monotonic() - self._started < PROGRESS_DELAY_S:
                    return
                self._start()
            if self._live is not None:
                self._live(phase, done, total)

    def _start(self) -> None:
        with self._lock:
            if self._live is not None or self._closed:
                return
            self._context = _rich_progress(*self._args)
            self._live = self._context.__enter__()
            for call in self._calls:
                self._live(*call)
            self._calls = []

    def close(self, exc: BaseException | None) -> None:
        self._timer.cancel()
        with self._lock:
            self._closed = True
            if self._context is not None:
                self._context.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
                return
        console = err_console()
        if exc is None and not console.is_terminal:  # a log: the lines live_progress closes with
            import time

            for line in _closing_lines(*self._args, self._calls, time.monotonic() - self._started):
                console.print(line, soft_wrap=True, markup=False, highlight=False)


def _compact(calls: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    first: dict[str, tuple[str, int, int]] = {}
    last: dict[str, tuple[str, int, int]] = {}
    for call in calls:
        first.setdefault(call[0], call)
        last[call[0]] = call
    kept = {id(c) for c in (*first.values(), *last.values(), calls[-1])}
    return [c for c in calls if id(c) in kept]


def _closing_lines(
    label: str,
    style: str,
    _width: int | None,
    interleaved: bool,
    relabel: Collection[str],
    calls: list[tuple[str, int, int]],
    elapsed: float,
) -> list[str]:
    """What :func:`~llmops_cli.cli.progress.live_progress` prints when its bars close, for ``calls``
    replayed on the bars ``progress`` would have made (task description, count, elapsed)."""
    from rich.text import Text

    from llmops_cli.cli.progress import clock, count_text

    tasks: dict[str, list[Any]] = {}  # key -> [description, done, total]
    if style != "phases":
        tasks[""] = [label, 0, None]
    for phase, done, total in calls:
        described = f"{label}: {PHASES.get(phase, phase)}"
        if style != "phases":
            name = PHASES.get(phase, phase)
            tasks[""] = [described if name else label, done, total or None]
        elif phase in relabel:
            if tasks:
                list(tasks.values())[-1][0] = described
        else:
            if phase not in tasks and not interleaved:
                for task in tasks.values():
                    task[1] = task[2] if task[2] is not None else task[1]
            tasks[phase] = [described, done, total]
    lines = []
    for description, done, total in tasks.values():
        parts = [count_text(done, total)] if (total or done) else []
        parts.append(f"elapsed {clock(elapsed)}")
        lines.append(f"{Text.from_markup(str(description)).plain.strip() or 'working'}: " + ", ".join(parts))
    return lines


@contextlib.contextmanager
def _rich_progress(
    label: str, style: str, width: int | None, interleaved: bool, relabel: Collection[str]
) -> Iterator[ProgressFn]:
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from llmops_cli.cli.progress import live_progress

    description = TextColumn("{task.description" + (f":<{width}" if width else "") + "}")
    count = DownloadColumn() if style == "bytes" else MofNCompleteColumn()
    with live_progress(description, BarColumn(), count, TimeElapsedColumn()) as bar:
        if style == "phases":
            tasks: dict[str, Any] = {}

            def report(phase: str, done: int, total: int) -> None:
                described = f"{label}: {PHASES.get(phase, phase)}"
                if phase in relabel:
                    if tasks:
                        bar.update(list(tasks.values())[-1], description=described)
                    return
                if phase not in tasks:
                    if not interleaved:  # a new phase means the earlier ones are done
                        for task in tasks.values():
                            bar.update(task, completed=bar.tasks[task].total)
                    tasks[phase] = bar.add_task(described, total=total)
                bar.update(tasks[phase], completed=done, total=total, description=described)

        else:
            single = bar.add_task(label, total=None)

            def report(phase: str, done: int, total: int) -> None:
                name = PHASES.get(phase, phase)
                bar.update(
                    single, description=f"{label}: {name}" if name else label, completed=done, total=total or None
                )

        yield report


@contextlib.contextmanager
def _status_progress(label: str, *, enabled: bool) -> Iterator[ProgressFn]:
    from llmops_cli.cli.progress import live_status

    with live_status(label) if enabled else contextlib.nullcontext() as status:

        def report(phase: str, done: int, total: int) -> None:
            if status is None:
                return
            detail = f" ({done} s)" if phase == "ready" else (f" {done * 100 // max(total, 1)}%" if total else "")
            status.update(f"{label}: {PHASES.get(phase, phase)}{detail}")

        yield report
