"""Rendering helpers. rich is imported lazily so ``llmops --help`` stays fast.

Results go to stdout, messages and errors to stderr; ``NO_COLOR`` is honoured by rich itself.
"""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from typing import Any

from llmops_cli.cli.state import STATE
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
