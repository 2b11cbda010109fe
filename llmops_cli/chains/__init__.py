"""Chains: ordered steps (prompt, retrieve, transform, call) that pass named values along."""

from llmops_cli.chains.engine import ChainRun, ChainRunner, StepRecord, run_chain
from llmops_cli.chains.errors import ChainStepError

__all__ = ["ChainRun", "ChainRunner", "ChainStepError", "StepRecord", "run_chain"]
