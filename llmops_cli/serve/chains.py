"""Chains behind the server: the runtime that routes their generations through the shared batchers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.chains.runtime import ProjectRuntime
from llmops_cli.errors import LlmopsError
from llmops_cli.serve.errors import ApiError, from_llmops_error

if TYPE_CHECKING:
    from llmops_cli.chains import ChainRun
    from llmops_cli.config import ProjectConfig
    from llmops_cli.generation import Provider
    from llmops_cli.serve.catalog import ModelCatalog


class ServeRuntime(ProjectRuntime):
    """The project runtime, with providers from the catalog: a chain's prompt step and a chat
    request for the same model land in the same batches."""

    def __init__(self, config: ProjectConfig, catalog: ModelCatalog) -> None:
        super().__init__(config)
        self.catalog = catalog

    def provider(self, model: str, adapter: Path | None) -> Provider:
        return self.catalog.batched(model, adapter)


def prompt_names(config: ProjectConfig, chain: str) -> list[str]:
    """The prompts a chain's steps use, in step order (for the prompt versions in the log)."""
    return config.chains[chain].prompt_names()


def chain_inputs(config: ProjectConfig, chain: str) -> list[str]:
    return list(config.chains[chain].inputs)


def check_chain(config: ProjectConfig, chain: str) -> None:
    if chain not in config.chains:
        raise ApiError(
            404,
            f"No chain named '{chain}' on this server (declared: {', '.join(config.chains) or 'none'}).",
            type="not_found_error",
            code="chain_not_found",
        )


def chain_error(error: LlmopsError) -> ApiError:
    """The HTTP answer for a failed chain: the status its root cause deserves, the chain's message."""
    cause = getattr(error, "cause", None)
    answer = from_llmops_error(cause if isinstance(cause, LlmopsError) else error)
    if cause is not None and not isinstance(cause, LlmopsError):
        answer = ApiError(500, "", type="server_error", code="chain_failed")
    answer.message = error.message
    return answer


def run_summary(run: ChainRun) -> dict[str, Any]:
    """The steps of a run as the API returns and the log keeps them (values are JSON-safe)."""
    return {
        "chain": run.chain,
        "run_id": run.run_id,
        "output_key": run.output,
        "latency_ms": round(run.latency_ms, 3),
        "steps": [
            {
                "id": s.id,
                "kind": s.kind,
                "target": s.target,
                "skipped": s.skipped,
                "latency_ms": round(s.latency_ms, 3),
                "tokens": s.tokens,
                "details": _json_safe({k: v for k, v in s.details.items() if k not in ("messages",)}),
            }
            for s in run.steps
        ],
    }


def output_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
