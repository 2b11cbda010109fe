"""The error a failing chain step raises: it names the step and carries the partial trace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops_cli.errors import LlmopsError

if TYPE_CHECKING:
    from llmops_cli.chains.engine import ChainRun


class ChainStepError(LlmopsError):
    def __init__(self, run: ChainRun, step_label: str, cause: BaseException) -> None:
        detail = cause.message if isinstance(cause, LlmopsError) else f"{type(cause).__name__}: {cause}"
        super().__init__(
            f"chain '{run.chain}' failed at step {step_label}: {detail}",
            hint=(cause.hint if isinstance(cause, LlmopsError) and cause.hint else None)
            or (f"The partial trace was saved to {run.trace_file}." if run.trace_file else None),
        )
        self.exit_code = cause.exit_code if isinstance(cause, LlmopsError) else self.exit_code
        self.run = run
        self.cause = cause
