"""Small text helpers shared by the core and the CLI (standard library only)."""

from __future__ import annotations


def plural(count: int | float, word: str, plural_form: str | None = None) -> str:
    """``"1 request"``, ``"2 requests"``, ``"0 requests"``; ``plural_form`` for irregular words
    (``plural(2, "query", "queries")``). Integers get thousands separators (``"3,000 rows"``)."""
    number = f"{count:,}" if isinstance(count, int) else f"{count:g}"
    return f"{number} {word if count == 1 else (plural_form or word + 's')}"


def format_number(value: object, digits: int = 4) -> str:
    """A number for a table cell, never in exponent notation: ``3,000``, ``61,234``, ``612.3``,
    ``0.001111``; ``n/a`` for None, NaN and infinities; other values as ``str``."""
    import math

    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value == 0:
            return "0"
        if abs(value) >= 10 ** (digits - 1):
            return f"{value:,.0f}"
        # `digits` significant digits in fixed notation (0.001111, 12.35), trailing zeros dropped.
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
        text = f"{value:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)
