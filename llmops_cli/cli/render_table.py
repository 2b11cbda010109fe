"""Tables whose numbers never wrap or get cut (:class:`FitTable`), and sparklines.

Numeric columns are ``no_wrap``, only text folds, and a table too wide for the console (a narrow
terminal, a CI log) is shown as one ``field  value`` list per row instead.
"""

from __future__ import annotations

import math
from typing import Any

from llmops_cli.text import format_number

_SPARKS = "▁▂▃▄▅▆▇█"
_TEXT_MIN = 10  # the narrowest a folding text column is allowed to get before the list layout is used


def sparkline(values: list[float | None]) -> str:
    """One character per bucket; blank where there is no value."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return ""
    top = max(known) or 1.0
    return "".join(
        " "
        if v is None or not math.isfinite(v)
        else _SPARKS[min(len(_SPARKS) - 1, int(v / top * (len(_SPARKS) - 1) + 0.5))]
        for v in values
    )


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


class FitTable:
    """A rich table whose numbers never wrap: numeric columns (every value a number or None) are
    ``no_wrap`` and right-aligned, text columns fold. When the console is too narrow for the table
    with whole numbers, each row is shown as a two-column ``field  value`` list instead."""

    def __init__(self, title: str | None, columns: list[str], rows: list[list[Any]], styles: list[str] | None):
        self.title = title
        self.columns = columns
        self.rows = rows
        self.styles = styles or [""] * len(rows)
        self.numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(columns))]

    @staticmethod
    def _cell(value: Any) -> str:
        return value if isinstance(value, str) else format_number(value)

    def _render_cell(self, value: Any, *, tall: bool = False) -> Any:
        from rich.text import Text

        if isinstance(value, str):
            return Text(value, overflow="fold")
        # Wide layout: the column is no_wrap and right-aligned. Tall layout: the value column also
        # holds text, so each number carries its own no_wrap.
        return Text(format_number(value), no_wrap=True, overflow="ignore") if tall else Text(format_number(value))

    def needed_width(self) -> int:
        """The narrowest the wide layout can be with every number whole (padding and borders included)."""
        total = len(self.columns) + 1  # vertical borders
        for i, column in enumerate(self.columns):
            cells = [self._cell(row[i]) for row in self.rows]
            if self.numeric[i]:  # no_wrap covers the header too
                width = max([len(c) for c in cells] + [len(column)])
            else:
                longest = max([len(w) for c in [*cells, column] for w in c.split()] or [1])
                width = min(longest, _TEXT_MIN)
            total += width + 2  # padding (0, 1)
        return total

    def wide(self) -> Any:
        from rich.table import Table

        table = Table(title=self.title, title_justify="left", header_style="bold")
        for i, column in enumerate(self.columns):
            if self.numeric[i]:
                table.add_column(column, no_wrap=True, justify="right", overflow="ignore")
            else:
                table.add_column(column, overflow="fold")
        for row, style in zip(self.rows, self.styles, strict=True):
            table.add_row(*(self._render_cell(v) for v in row), style=style or None)
        return table

    def tall(self) -> Any:
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table

        parts: list[Any] = []
        for n, (row, style) in enumerate(zip(self.rows, self.styles, strict=True)):
            title = self.title if n == 0 else None
            table = Table(title=title, title_justify="left", show_header=False, style=style or "none")
            table.add_column("field", style="bold", overflow="fold")
            table.add_column("value", overflow="fold")
            for i, column in enumerate(self.columns):
                table.add_row(escape(column), self._render_cell(row[i], tall=True))
            parts.append(table)
        return Group(*parts) if parts else self.wide()

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield self.wide() if self.needed_width() <= options.max_width else self.tall()

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        return Measurement.get(console, options, self.wide())
