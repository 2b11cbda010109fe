"""The one progress protocol of the core: ``progress(phase, done, total)``.

A long-running core function takes ``progress: ProgressFn | None`` and calls it with the name of
the step it is in (``"hash"``, ``"chunks"``, ``"tokens"``...), how much of it is done and how much
there is in all (``total`` 0 when not known yet; ``done`` may count items, bytes or seconds: the
function's docstring says which). The core never draws anything: ``llmops_cli.cli.output.progress``
renders these calls as a bar or a status line, and a Python caller can pass any function, or none.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]
"""``(phase, done, total)``: called as work advances; must be cheap and must not raise."""


def no_progress(phase: str, done: int, total: int) -> None:
    """The callback used when the caller passes none."""
