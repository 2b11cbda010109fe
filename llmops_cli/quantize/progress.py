"""The progress callback of ``llmops quantize``: a step message, with a count while the eval runs.

Not :data:`llmops_cli.progress.ProgressFn`: the steps are sentences that name what they work on.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``progress("measuring base-4bit")`` starts a step; ``done``/``total`` update the current one."""

    def __call__(self, message: str, done: int | None = None, total: int | None = None) -> None: ...


def silent(message: str, done: int | None = None, total: int | None = None) -> None:
    """The callback used when the caller passes none."""
