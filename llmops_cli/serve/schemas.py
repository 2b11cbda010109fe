"""Request bodies the server accepts (pydantic), and their translation into generation requests.

The OpenAI fields llmops can honour are modelled; unknown fields are ignored (clients send many
optional ones), but a field that asks for something we cannot do (``logprobs``, ``echo``, tools,
image parts) is refused with a 400 rather than silently dropped.

Differences from OpenAI, on purpose: without ``temperature`` decoding is greedy (deterministic, the
better default for small local models), and ``max_tokens`` defaults to 256 for chat.

Every value is checked before it reaches a model or the request log (the limits below, listed in
the README's "Limits" table): text must be encodable as UTF-8 (JSON allows a lone surrogate escape
such as ``"\ud800"``, which no tokenizer, response or database can take), numbers finite, sampling
values in ranges where the model's arithmetic stays finite, stop strings few and short (transformers
builds a table of vocabulary x stop-string length for each set of stop strings).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from llmops_cli.generation import GenerationParams, GenerationRequest, Message
from llmops_cli.serve.errors import ApiError

CHAT_DEFAULT_MAX_TOKENS = 256
COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
MAX_CHOICES = 8
MAX_STOPS = 4  # as OpenAI
MAX_STOP_CHARS = (
    64  # transformers' stop table: 64 chars ~53 MB and 0.6 s per new stop set (SmolLM2), 1024: 0.8 GB, 11 s
)
MIN_TEMPERATURE = 0.01  # below it logits / temperature overflow to inf (1e-300 did); 0 means greedy
MAX_TEMPERATURE = 2.0
MAX_TOP_K = 100_000
MIN_REPETITION_PENALTY, MAX_REPETITION_PENALTY = 0.01, 10.0
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit value; llama.cpp uses the seed modulo 2**32 - 1
UNENCODABLE = "unencodable_text"  # the pydantic error type the app answers with 400


def encodable(value: str) -> str:
    """``value`` when it can be encoded as UTF-8; else a validation error (a lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PydanticCustomError(
            UNENCODABLE,
            "text cannot be encoded as UTF-8 (a lone surrogate such as \\ud800 at character {position})",
            {"position": error.start},
        ) from None
    return value


Text = Annotated[str, AfterValidator(encodable)]


def unencodable_path(value: Any, path: str = "") -> str | None:
    """Where in a JSON value (keys included) a string cannot be encoded as UTF-8, else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "value"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found = unencodable_path(str(key), where) or unencodable_path(item, where)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = unencodable_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    def unsupported(self, *names: str) -> None:
        """400 when any of these (extra) fields is set to something other than off/empty."""
        extra = self.model_extra or {}
        for name in names:
            value = extra.get(name)
            if value not in (None, False, 0, [], {}, ""):
                raise ApiError(400, f"'{name}' is not supported by this server.", param=name, code="unsupported")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Text
    text: Text | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[ContentPart] | None = None
    name: Text | None = None

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
    model: Text | None = None
    temperature: float | None = Field(None, ge=0, le=MAX_TEMPERATURE)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=MAX_TOP_K)  # vLLM-style extension
    repetition_penalty: float | None = Field(
        None, ge=MIN_REPETITION_PENALTY, le=MAX_REPETITION_PENALTY
    )  # vLLM-style extension
    max_tokens: int | None = Field(None, ge=1)
    stop: Text | list[Text] | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    user: Text | None = Field(None, max_length=256)
    # vLLM's field: keep only the last N prompt tokens (-1: as many as leave room for max_tokens).
    truncate_prompt_tokens: int | None = Field(None, ge=-1)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        longest = max((len(s) for s in stops), default=0)
        if longest > MAX_STOP_CHARS:
            raise ValueError(f"a stop sequence may have at most {MAX_STOP_CHARS} characters, not {longest}")
        return value

    @field_validator("temperature")
    @classmethod
    def _check_temperature(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < MIN_TEMPERATURE:
            raise ValueError(
                f"temperature must be 0 (greedy) or between {MIN_TEMPERATURE} and {MAX_TEMPERATURE}, not {value:g}"
            )
        return value

    @field_validator("truncate_prompt_tokens")
    @classmethod
    def _check_truncate(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("truncate_prompt_tokens must be -1 (fit the context) or at least 1")
        return value

    def params(self, *, max_tokens: int | None, default_max_tokens: int, limit: int) -> GenerationParams:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ApiError(400, f"'{name}' is not supported by this server.", param=name, code="unsupported")
        self.unsupported("logit_bias")
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
            truncate_prompt_tokens=self.truncate_prompt_tokens,
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
    prompt: Text | list[Text]

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
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("inputs")
    @classmethod
    def _check_inputs(cls, value: dict[str, Any]) -> dict[str, Any]:
        where = unencodable_path(value)
        if where is not None:
            raise PydanticCustomError(
                UNENCODABLE, "text cannot be encoded as UTF-8 (a lone surrogate) at {where}", {"where": where}
            )
        return value


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    request_id: Text = Field(min_length=1, max_length=200)
    score: float | None = None
    label: Text | None = Field(None, max_length=200)
    comment: Text | None = Field(None, max_length=10_000)

    def check(self) -> None:
        if self.score is None and not self.label and not self.comment:
            raise ApiError(400, "Feedback needs at least one of score, label or comment.", param="score")


def _choices(messages: tuple[Message, ...], params: GenerationParams, n: int) -> list[GenerationRequest]:
    """``n`` requests for one prompt; seeded sampling gets seed, seed+1, ... so the choices differ."""
    if n == 1:
        return [GenerationRequest(messages, params)]
    out = []
    for i in range(n):
        seed = None if params.seed is None else (params.seed + i) % (MAX_SEED + 1)
        out.append(GenerationRequest(messages, params.merged({"seed": seed})))
    return out
