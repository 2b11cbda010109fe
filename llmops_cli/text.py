"""Small text helpers shared by the core and the CLI (standard library only)."""

from __future__ import annotations


def plural(count: int | float, word: str, plural_form: str | None = None) -> str:
    """``"1 request"``, ``"2 requests"``, ``"0 requests"``; ``plural_form`` for irregular words
    (``plural(2, "query", "queries")``). Integers get thousands separators (``"3,000 rows"``)."""
    number = f"{count:,}" if isinstance(count, int) else f"{count:g}"
    return f"{number} {word if count == 1 else (plural_form or word + 's')}"
