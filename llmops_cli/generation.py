"""Shared types for text generation: what prompts produce and every provider consumes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings. ``temperature == 0`` means greedy decoding."""

    temperature: float = 0.0
    max_new_tokens: int = 128
    top_p: float = 1.0
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repetition_penalty: float | None = None

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
    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=GenerationParams)


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
