"""OpenAI response bodies: chat completions, text completions, their stream chunks, and SSE framing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llmops_cli.generation import GenerationResult

SSE_DONE = "data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> str:
    """One server-sent event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def results_usage(results: Sequence[GenerationResult], prompts: int = 1) -> dict[str, int]:
    """Usage of ``results``; the prompt is counted once per distinct prompt, as OpenAI does for ``n``."""
    per_prompt = len(results) // max(1, prompts)
    prompt_tokens = sum(r.prompt_tokens for r in results[:: max(1, per_prompt)])
    return usage(prompt_tokens, sum(r.completion_tokens for r in results))


def chat_completion(request_id: str, model: str, created: int, results: Sequence[GenerationResult]) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": r.text},
                "finish_reason": r.finish_reason,
                "logprobs": None,
            }
            for i, r in enumerate(results)
        ],
        "usage": results_usage(results),
    }


def text_completion(
    request_id: str, model: str, created: int, results: Sequence[GenerationResult], prompts: int
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": i, "text": r.text, "finish_reason": r.finish_reason, "logprobs": None}
            for i, r in enumerate(results)
        ],
        "usage": results_usage(results, prompts),
    }


def chat_chunk(
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` gives the usage-only chunk (no choices)."""
    chunk: dict[str, Any] = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model}
    chunk["choices"] = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    )
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk


def text_chunk(
    request_id: str,
    model: str,
    created: int,
    text: str | None,
    finish_reason: str | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A streamed ``text_completion`` piece; ``text=None`` gives the usage-only chunk."""
    chunk: dict[str, Any] = {"id": request_id, "object": "text_completion", "created": created, "model": model}
    chunk["choices"] = (
        [] if text is None else [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}]
    )
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk
