"""``llmops prompt diff --eval SUITE``: run eval suites on both sides of a prompt diff."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.evals.results import SuiteResult

# A context manager per suite that yields the runner's (cases done, in all) callback, or None.
ProgressFactory = Callable[[str], contextlib.AbstractContextManager[Any]]


def eval_both_sides(
    config: ProjectConfig,
    report: Any,
    suites: Sequence[str],
    *,
    limit: int | None = None,
    use_adapters: bool = True,
    progress: ProgressFactory | None = None,
    on_skipped: Callable[[str], None] | None = None,
) -> dict[str, tuple[SuiteResult, SuiteResult]]:
    """suite -> (old result, new result with baseline deltas), for the suites that use a changed prompt.

    ``report`` is the :class:`~llmops_cli.prompts.diff.DiffReport`; an unknown suite fails before any
    generation; a suite whose target uses none of the changed prompts is left out (``on_skipped``
    gets a message saying so).
    """
    from llmops_cli.evals.history import eval_prompt_versions
    from llmops_cli.evals.runner import suite_spec

    out: dict[str, tuple[SuiteResult, SuiteResult]] = {}
    for suite in suites:
        suite_spec(config, suite)  # unknown suite: a clear error before any generation
        factory = progress or (lambda _text: contextlib.nullcontext())
        with factory(f"{suite} (both prompt versions)") as report_progress:
            pair = eval_prompt_versions(
                config, suite, report, progress=report_progress, limit=limit, use_adapters=use_adapters,
                adversarial=False,
            )  # fmt: skip
        if pair is None:
            if on_skipped:
                on_skipped(f"eval {suite}: its target uses none of the changed prompts; nothing to compare")
            continue
        out[suite] = pair
    return out
