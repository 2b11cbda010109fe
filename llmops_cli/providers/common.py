"""Pieces every provider shares, free of torch and HTTP: message checks, batching plans, stop strings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llmops_cli.errors import UsageError
from llmops_cli.generation import GenerationParams, GenerationRequest, Message

ProgressCallback = Callable[[int, int], None]  # (requests done, requests in all), after each batch

ROLES = ("system", "user", "assistant", "tool")


def check_messages(messages: Sequence[Message]) -> None:
    """Reject malformed chat messages with a message a user can act on, before any model work."""
    if not messages:
        raise UsageError("A generation request has no messages.", hint="Give at least one user message.")
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise UsageError(
                f"Message {i} is not a chat message: {message!r}.",
                hint=f"Each message needs 'role' (one of {', '.join(ROLES)}) and a string 'content'.",
            )


def transcript(messages: Sequence[Message]) -> str:
    """A plain-text chat for tokenizers without a chat template, ending where the assistant speaks."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


def plan_batches(requests: Sequence[GenerationRequest], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Request indices grouped into batches that one ``generate`` call can serve.

    Only requests with identical params share a batch (one decoding config per call). Within a group,
    requests are sorted by prompt length so a batch pads little; the caller puts results back in
    the original order. Groups keep the order in which they first appear.
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, not {batch_size}.")
    groups: dict[GenerationParams, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.params, []).append(index)
    batches: list[list[int]] = []
    for indices in groups.values():
        ordered = sorted(indices, key=lambda i: lengths[i])  # stable: equal lengths keep their order
        batches += [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]
    return batches


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest stop string in ``text`` (None if none occurs)."""
    hits = [text.find(stop) for stop in stops if stop]
    found = [hit for hit in hits if hit >= 0]
    return min(found) if found else None


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to (not including) the first stop string, and whether one was found."""
    index = find_stop(text, stops)
    return (text, False) if index is None else (text[:index], True)
