"""The streaming half of :class:`~llmops_cli.providers.openai_http.OpenAIProvider`, over httpx.

``stream_chat`` reads a ``stream: true`` answer's SSE events as they arrive (the gateway of
``llmops serve --upstream`` forwards them piece by piece); ``list_models`` asks ``GET /models``.
Errors carry ``http_status`` like the rest of the provider's. httpx is imported inside functions.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UnavailableError
from llmops_cli.generation import GenerationRequest, GenerationResult
from llmops_cli.providers.common import check_messages
from llmops_cli.providers.openai_http import _error_text, _reason, with_status

if TYPE_CHECKING:
    from llmops_cli.providers.openai_http import OpenAIProvider


def stream_chat(
    provider: OpenAIProvider, request: GenerationRequest, cancel: threading.Event | None = None
) -> Generator[str, None, GenerationResult]:
    """Text deltas of one ``stream: true`` answer, each as soon as its SSE event arrives.

    The generator's return value is the result (usage from the server's last event when it
    sends one, else the number of content events). Setting ``cancel`` or closing the generator
    closes the connection, which stops the server's generation. No retries: a stream is not
    repeated behind the client's back.
    """
    import httpx

    check_messages(request.messages)
    body = {**provider._body(request), "stream": True, "stream_options": {"include_usage": True}}
    headers = {**provider._headers(), "Accept": "text/event-stream"}
    started = time.perf_counter()
    text, pieces, finish, usage, model = "", 0, "stop", None, provider.model
    try:
        with provider.http().stream("POST", provider.url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                raise provider._stream_error(response.status_code, _error_text(response.text))
            for data in _sse_data(response.iter_lines()):
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                if data == "[DONE]":
                    break
                event = _event(data, provider.name, provider.url)
                model = str(event.get("model") or model)
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta")
                    piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                    finish = str(choice.get("finish_reason") or finish)
                    if piece:
                        text += str(piece)
                        pieces += 1
                        yield str(piece)
    except httpx.TimeoutException as error:
        message = f"Model '{provider.name}' at {provider.url} did not answer within {provider.timeout_s:g} s ({error})."
        raise with_status(UnavailableError(message, hint="Raise the timeout, or check the server."), 504) from None
    except httpx.HTTPError as error:
        message = f"Model '{provider.name}' at {provider.url} failed: {_reason(error) or type(error).__name__}."
        hint = "Check that the server is running and reachable."
        raise with_status(UnavailableError(message, hint=hint), 502) from None
    use = usage if isinstance(usage, dict) else {}
    return GenerationResult(
        text=text,
        prompt_tokens=int(use.get("prompt_tokens") or 0),
        completion_tokens=int(use.get("completion_tokens") or pieces),
        latency_ms=(time.perf_counter() - started) * 1000,
        finish_reason=finish,
        model=model,
    )


def list_models(provider: OpenAIProvider, timeout_s: float | None = None) -> list[dict[str, Any]]:
    """The server's ``GET {base_url}/models`` entries (raises with ``http_status`` when it fails)."""
    import httpx

    url = f"{provider.base_url}/models"
    try:
        response = provider.http().get(url, headers=provider._headers(), timeout=timeout_s or provider.timeout_s)
    except httpx.TimeoutException:
        raise with_status(
            UnavailableError(f"{url} did not answer within {timeout_s or provider.timeout_s:g} s."), 504
        ) from None
    except httpx.HTTPError as error:
        raise with_status(UnavailableError(f"{url} cannot be reached: {_reason(error)}."), 502) from None
    if response.status_code >= 400:
        raise with_status(
            UnavailableError(f"{url} answered HTTP {response.status_code}: {_error_text(response.text)}"), 502
        )
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list):
        raise with_status(UnavailableError(f"{url} did not answer with an OpenAI model list."), 502)
    return [entry for entry in data if isinstance(entry, dict) and isinstance(entry.get("id"), str)]


def _sse_data(lines: Any) -> Generator[str, None, None]:
    """The ``data:`` payloads of an SSE stream (one per event; comments and other fields skipped)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def _event(data: str, name: str, url: str) -> dict[str, Any]:
    """One SSE event's JSON; an ``error`` event (sent after the headers) raises as the server meant it."""
    try:
        event = json.loads(data)
    except ValueError:
        raise with_status(
            UnavailableError(f"Model '{name}' at {url} streamed invalid JSON: {data[:200]!r}"), 502
        ) from None
    if not isinstance(event, dict):
        raise with_status(UnavailableError(f"Model '{name}' at {url} streamed unexpected JSON: {data[:200]}"), 502)
    if "error" in event and not event.get("choices"):
        detail = event["error"]
        message = detail.get("message", detail) if isinstance(detail, dict) else detail
        raise with_status(UnavailableError(f"Model '{name}' at {url} failed mid-stream: {message}"), 502)
    return event
