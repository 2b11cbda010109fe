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
    """
    if style == "status":
        with _status_progress(label, enabled=enabled) as report:
            yield report
        return
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from llmops_cli.cli.progress import live_progress

    description = TextColumn("{task.description" + (f":<{width}" if width else "") + "}")
    count = DownloadColumn() if style == "bytes" else MofNCompleteColumn()
    with live_progress(description, BarColumn(), count, TimeElapsedColumn(), enabled=enabled) as bar:
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
