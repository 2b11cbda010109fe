"""Request bodies the server accepts (pydantic), and their translation into generation requests.

The OpenAI fields llmops can honour are modelled; unknown fields are ignored (clients send many
optional ones), but a field that asks for something we cannot do (``logprobs``, ``echo``, tools,
image parts) is refused with a 400 rather than silently dropped.

Differences from OpenAI, on purpose: without ``temperature`` decoding is greedy (deterministic, the
better default for small local models), and ``max_tokens`` defaults to 256 for chat.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmops_cli.generation import GenerationParams, GenerationRequest, Message
from llmops_cli.serve.errors import ApiError

CHAT_DEFAULT_MAX_TOKENS = 256
COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
MAX_CHOICES = 8
MAX_STOPS = 4


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")

    def unsupported(self, *names: str) -> None:
        """400 when any of these (extra) fields is set to something other than off/empty."""
        extra = self.model_extra or {}
        for name in names:
            value = extra.get(name)
            if value not in (None, False, 0, [], {}, ""):
                raise ApiError(400, f"'{name}' is not supported by this server.", param=name, code="unsupported")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def as_message(self, index: int) -> Message:
        role = "system" if self.role == "developer" else self.role  # OpenAI's newer name for system
        if self.content is None:
            return {"role": role, "content": ""}
        if isinstance(self.content, str):
            return {"role": role, "content": self.content}
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise ApiError(
                    400,
                    f"messages[{index}]: content part of type '{part.type}' is not supported (text only).",
                    param=f"messages.{index}.content",
                    code="unsupported",
                )
            texts.append(part.text)
        return {"role": role, "content": "".join(texts)}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class _Sampling(_Lenient):
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)  # vLLM-style extension
    repetition_penalty: float | None = Field(None, gt=0)  # vLLM-style extension
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return value

    def params(self, *, max_tokens: int | None, default_max_tokens: int, limit: int) -> GenerationParams:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ApiError(400, f"'{name}' is not supported by this server.", param=name, code="unsupported")
        wanted = max_tokens if max_tokens is not None else min(default_max_tokens, limit)
        if wanted > limit:
            raise ApiError(400, f"max_tokens {wanted} is above this server's limit of {limit}.", param="max_tokens")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationParams(
            temperature=self.temperature or 0.0,
            max_new_tokens=wanted,
            top_p=self.top_p if self.top_p is not None else 1.0,
            top_k=self.top_k,
            stop=tuple(stop),
            seed=self.seed,
            repetition_penalty=self.repetition_penalty,
        )

    def check_stream(self) -> None:
        if self.stream and self.n > 1:
            raise ApiError(400, "n > 1 cannot be streamed; ask for one choice or turn streaming off.", param="n")

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def to_requests(self, *, limit: int) -> list[GenerationRequest]:
        self.unsupported("tools", "functions", "tool_choice", "logprobs", "top_logprobs", "response_format")
        self.check_stream()
        messages = tuple(m.as_message(i) for i, m in enumerate(self.messages))
        wanted = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        params = self.params(max_tokens=wanted, default_max_tokens=CHAT_DEFAULT_MAX_TOKENS, limit=limit)
        return _choices(messages, params, self.n)

    def last_user_text(self) -> str:
        """The text of the last user message (what a chain-as-model gets as its input)."""
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message.role == "user":
                return message.as_message(index)["content"]
        raise ApiError(400, "A chain needs a user message to answer.", param="messages")


class CompletionRequest(_Sampling):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt list must not be empty")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def to_requests(self, *, limit: int) -> list[GenerationRequest]:
        """One request per prompt and choice; each prompt is sent as one user message (see module doc)."""
        self.unsupported("echo", "logprobs", "suffix", "best_of")
        self.check_stream()
        if self.stream and len(self.prompts) > 1:
            raise ApiError(400, "Several prompts cannot be streamed; send one prompt.", param="prompt")
        params = self.params(max_tokens=self.max_tokens, default_max_tokens=COMPLETION_DEFAULT_MAX_TOKENS, limit=limit)
        requests: list[GenerationRequest] = []
        for prompt in self.prompts:
            requests += _choices(({"role": "user", "content": prompt},), params, self.n)
        return requests


class ChainInvokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    score: float | None = None
    label: str | None = Field(None, max_length=200)
    comment: str | None = Field(None, max_length=10_000)

    def check(self) -> None:
        if self.score is None and not self.label and not self.comment:
            raise ApiError(400, "Feedback needs at least one of score, label or comment.", param="score")


def _choices(messages: tuple[Message, ...], params: GenerationParams, n: int) -> list[GenerationRequest]:
    """``n`` requests for one prompt; seeded sampling gets seed, seed+1, ... so the choices differ."""
    if n == 1:
        return [GenerationRequest(messages, params)]
    out = []
    for i in range(n):
        seed = None if params.seed is None else params.seed + i
        out.append(GenerationRequest(messages, params.merged({"seed": seed})))
    return out
