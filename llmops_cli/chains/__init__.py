"""Chains: ordered steps (prompt, retrieve, transform, call) that pass named values along."""

from typing import TYPE_CHECKING

from llmops_cli.lazy import exports

if TYPE_CHECKING:
    from llmops_cli.chains.engine import ChainRun, ChainRunner, StepRecord, run_chain
    from llmops_cli.chains.errors import ChainStepError

__all__ = ["ChainRun", "ChainRunner", "ChainStepError", "StepRecord", "run_chain"]

# Each submodule loads when one of its names is first used (llmops_cli.lazy).
__getattr__, __dir__ = exports(
    __name__,
    {
        "llmops_cli.chains.engine": ("ChainRun", "ChainRunner", "StepRecord", "run_chain"),
        "llmops_cli.chains.errors": ("ChainStepError",),
    },
)
