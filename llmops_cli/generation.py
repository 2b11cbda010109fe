"""Shared types for text generation: what prompts produce and every provider consumes."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings. ``temperature == 0`` means greedy decoding.

    ``truncate_prompt_tokens``: keep only the last N tokens of the rendered prompt (vLLM's meaning);
    -1 keeps as many as leave room for ``max_new_tokens`` in the model's context. Unset, a prompt
    longer than the context is an error (:class:`~llmops_cli.errors.UsageError`).
    """

    temperature: float = 0.0
    max_new_tokens: int = 128
    top_p: float = 1.0
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repetition_penalty: float | None = None
    truncate_prompt_tokens: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GenerationParams:
        data = dict(data or {})
        stop = data.get("stop") or ()
        data["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def merged(self, override: dict[str, Any] | None) -> GenerationParams:
        """These params with the keys set in ``override`` replaced (chain step or CLI params)."""
        if not override:
            return self
        return GenerationParams.from_dict({**self.as_dict(), **override})

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stop"] = list(self.stop)
        return out


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to answer. ``cancel``, when given and set, asks the provider to stop this request
    at its next token (its caller left); providers that cannot stop early simply finish."""

    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    cancel: threading.Event | None = field(default=None, compare=False, repr=False)

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


def fit_prompt(tokens: list[int], params: GenerationParams, window: int | None, model: str) -> list[int]:
    """``tokens`` cut as ``params.truncate_prompt_tokens`` asks, checked against the context ``window``.

    Raises a UsageError (a 400 in the server) naming both numbers when the prompt leaves no room
    for even one generated token.
    """
    from llmops_cli.errors import UsageError

    keep = params.truncate_prompt_tokens
    if keep is not None and window is not None and keep < 0:
        keep = window - params.max_new_tokens
        if keep < 1:
            raise UsageError(
                f"max_tokens {params.max_new_tokens} leaves no room for a prompt in the {window}-token "
                f"context of model '{model}'.",
                hint="Ask for fewer max_tokens.",
            )
    if keep is not None and keep > 0 and len(tokens) > keep:
        tokens = tokens[-keep:]
    if window is not None and len(tokens) >= window:
        raise UsageError(
            f"The prompt is {len(tokens)} tokens; model '{model}' has a {window}-token context window "
            "(and needs room for at least one generated token).",
            hint="Shorten the prompt, or set truncate_prompt_tokens (e.g. -1) to keep only its last tokens.",
        )
    return tokens


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    finish_reason: str  # "stop" (EOS or a stop string) | "length"
    model: str


class Provider(Protocol):
    """Anything that turns chat messages into text: a local model, an HTTP endpoint."""

    name: str

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]: ...
