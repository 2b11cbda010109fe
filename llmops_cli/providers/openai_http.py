"""Text generation through an OpenAI-compatible HTTP API (OpenAI, vLLM, llama.cpp server, Ollama...).

Standard library only (urllib + json) for whole answers, so remote models need no extra package.
Each request is one ``POST {base_url}/chat/completions``; a few run concurrently on a small thread
pool. Connection errors, timeouts, 429 and 5xx are retried with exponential backoff and jitter
(``Retry-After`` is honoured); other 4xx are the caller's mistake and fail at once with the
server's own message. :meth:`OpenAIProvider.stream` (``stream: true``, used by the gateway of
``llmops serve --upstream``) reads the server's SSE events with httpx as they arrive.

Errors carry ``http_status``, the answer a gateway gives for them: the upstream's own 4xx (400,
404, 413, 422, 429), 502 when it cannot be reached, fails (5xx) or refuses our key (401/403),
504 when it does not answer in time.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from llmops_cli.errors import LlmopsError, UnavailableError, UsageError
from llmops_cli.generation import GenerationRequest, GenerationResult
from llmops_cli.providers.common import ProgressCallback, check_messages, cut_at_stop

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_CONCURRENCY = 4
MAX_RETRY_AFTER_S = 60.0  # a server asking for a longer pause is better reported than waited for
_UNSET_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class _Attempt:
    """Why one HTTP attempt failed: retry it (after ``wait_s`` if the server said) or give up."""

    message: str
    retry: bool
    wait_s: float | None = None
    status: int | None = None
    timed_out: bool = False


class OpenAIProvider:
    """A :class:`~llmops_cli.generation.Provider` over ``POST {base_url}/chat/completions``.

    ``latency_ms`` is the wall time the caller waited for that request, retries included.
    ``timeout_s`` bounds each connect and each read of one attempt (urllib's socket timeout).
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        concurrency: int | None = None,
        verify_tls: bool = True,
    ) -> None:
        unset = _UNSET_VAR.search(base_url)
        if unset:  # the config loader leaves ${VAR} as written when the variable is missing
            raise UsageError(
                f"base_url of model '{name}' needs the environment variable {unset.group(1)}, which is not set.",
                hint=f"Export {unset.group(1)} (e.g. http://127.0.0.1:8000/v1) or write the URL in llmops.yaml.",
            )
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(f"base_url of model '{name}' must start with http:// or https://, not {base_url!r}.")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.headers = dict(headers or {})
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.max_concurrency = max(1, int(max_concurrency))
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        if concurrency is not None:
            # Read by BatchingProvider: this many one-request calls in flight at once, none waiting
            # for a batch to fill (a gateway forwards each request the moment it arrives).
            self.concurrency = max(1, int(concurrency))
            self.preferred_batch = 1
        self.verify_tls = verify_tls  # False only for an upstream in the same pod with a self-signed certificate
        self._client: Any = None  # httpx.Client for streaming, made on first use
        self._client_lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: ModelSpec, *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> OpenAIProvider:
        """A provider for a remote ``models:`` entry (``timeout_s``, ``max_retries``, ``headers`` from its entry)."""
        if not spec.base_url or not spec.model:
            raise UsageError(f"Remote model '{spec.name}' needs both 'base_url' and 'model'.")
        return cls(
            name=spec.name,
            base_url=spec.base_url,
            model=spec.model,
            api_key_env=spec.api_key_env,
            headers=spec.headers,
            timeout_s=DEFAULT_TIMEOUT_S if spec.timeout_s is None else spec.timeout_s,
            max_retries=DEFAULT_MAX_RETRIES if spec.max_retries is None else spec.max_retries,
            max_concurrency=max_concurrency,
        )

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def generate(
        self, requests: list[GenerationRequest], *, progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        """One result per request, in the same order; the first failure (in order) is raised."""
        if not requests:
            return []
        for request in requests:
            check_messages(request.messages)
        headers = self._headers()  # before any thread starts, so a missing key fails once, clearly
        if len(requests) == 1 or self.max_concurrency == 1:
            results = []
            for done, request in enumerate(requests, start=1):
                results.append(self._complete(request, headers))
                if progress is not None:
                    progress(done, len(requests))
            return results
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            futures = [pool.submit(self._complete, request, headers) for request in requests]
            results = []
            for done, future in enumerate(futures, start=1):
                try:
                    results.append(future.result())
                except BaseException:
                    for pending in futures:
                        pending.cancel()  # do not start more work for a batch that already failed
                    raise
                if progress is not None:
                    progress(done, len(requests))
            return results

    def stream(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Generator[str, None, GenerationResult]:
        """Text deltas of one ``stream: true`` answer, each as soon as its SSE event arrives.

        The generator's return value is the result (usage from the server's last event when it
        sends one, else the number of content events). Setting ``cancel`` or closing the generator
        closes the connection, which stops the server's generation. No retries: a stream is not
        repeated behind the client's back (see :mod:`.openai_stream`).
        """
        from llmops_cli.providers.openai_stream import stream_chat

        return stream_chat(self, request, cancel)

    def list_models(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """The server's ``GET {base_url}/models`` entries (raises with ``http_status`` when it fails)."""
        from llmops_cli.providers.openai_stream import list_models

        return list_models(self, timeout_s)

    def http(self) -> Any:
        """The shared httpx client (kept-alive connections; thread-safe)."""
        with self._client_lock:
            if self._client is None:
                import httpx

                timeout = httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
                self._client = httpx.Client(timeout=timeout, limits=limits, verify=self.verify_tls)
            return self._client

    def _tls(self) -> Any:
        if self.verify_tls or not self.base_url.startswith("https://"):
            return None
        import ssl

        return ssl._create_unverified_context()  # asked for explicitly (--no-upstream-verify)

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _stream_error(self, status: int, message: str) -> LlmopsError:
        outcome = _Attempt(f"HTTP {status}: {message}", retry=status == 429 or status >= 500, status=status)
        if not outcome.retry:
            return _client_error(self.name, self.url, outcome)
        error = UnavailableError(f"Model '{self.name}' at {self.url} failed: {outcome.message}")
        return with_status(error, gateway_status(status))

    # --- one request ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.headers}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise UsageError(
                    f"Model '{self.name}' needs an API key in the environment variable {self.api_key_env}, "
                    "which is not set.",
                    hint=f"Export {self.api_key_env}=<your key>, or remove 'api_key_env' if the server needs none.",
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in request.messages],
            "temperature": params.temperature,
            "max_tokens": params.max_new_tokens,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        # Not in OpenAI's own API, but vLLM, llama.cpp and Ollama accept them; sent only when set.
        if params.top_k is not None:
            body["top_k"] = params.top_k
        if params.repetition_penalty is not None:
            body["repetition_penalty"] = params.repetition_penalty
        return body

    def _complete(self, request: GenerationRequest, headers: dict[str, str]) -> GenerationResult:
        payload = json.dumps(self._body(request)).encode("utf-8")
        started = time.perf_counter()
        response = self._post_with_retries(payload, headers)
        latency_ms = (time.perf_counter() - started) * 1000
        return self._result(response, request, latency_ms)

    def _post_with_retries(self, payload: bytes, headers: dict[str, str]) -> dict[str, Any]:
        failure = _Attempt("no attempt made", retry=True)
        for attempt in range(self.max_retries + 1):
            outcome = self._post_once(payload, headers)
            if isinstance(outcome, dict):
                return outcome
            if not outcome.retry:
                raise _client_error(self.name, self.url, outcome)
            failure = outcome
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, outcome.wait_s))
        tries = self.max_retries + 1
        error = UnavailableError(
            f"Model '{self.name}' at {self.url} failed after {tries} attempt{'s' * (tries > 1)}: {failure.message}",
            hint="Check that the server is running and reachable, and its base_url; "
            "raise 'timeout_s' or 'max_retries' for a slow server.",
        )
        raise with_status(error, gateway_status(failure.status, timed_out=failure.timed_out))

    def _post_once(self, payload: bytes, headers: dict[str, str]) -> dict[str, Any] | _Attempt:
        request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._tls()) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            status, message = error.code, _server_message(error)
            retry = status == 429 or status >= 500
            return _Attempt(f"HTTP {status}: {message}", retry, _retry_after(error.headers), status)
        except urllib.error.URLError as error:
            timed_out = isinstance(error.reason, TimeoutError)
            return _Attempt(f"cannot connect ({_reason(error.reason)})", retry=True, timed_out=timed_out)
        except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
            return _Attempt(f"no answer within {self.timeout_s:g} s (timeout_s)", retry=True, timed_out=True)
        except (ConnectionError, http.client.HTTPException, OSError) as error:
            return _Attempt(f"connection failed ({_reason(error)})", retry=True)
        try:
            data = json.loads(raw)
        except ValueError:
            return _Attempt(f"the server answered with invalid JSON: {raw[:200]!r}", retry=True)
        if not isinstance(data, dict):
            return _Attempt(f"the server answered with unexpected JSON: {str(data)[:200]}", retry=True)
        return data

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        # Exponential backoff with jitter, so clients that failed together do not retry together.
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)

    def _result(self, data: dict[str, Any], request: GenerationRequest, latency_ms: float) -> GenerationResult:
        try:
            choice = data["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise UnavailableError(
                f"Model '{self.name}' at {self.url} answered without choices[0].message: {str(data)[:300]}",
                hint="Is base_url an OpenAI-compatible API (it usually ends in /v1)?",
            ) from error
        # Servers cut at stop strings themselves; cutting again covers those that leave them in.
        text, cut = cut_at_stop(str(text), request.params.stop)
        finish = choice.get("finish_reason") or "stop"
        usage = data.get("usage") or {}
        return GenerationResult(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=latency_ms,
            finish_reason="stop" if cut else str(finish),
            model=str(data.get("model") or self.model),
        )


def _client_error(name: str, url: str, outcome: _Attempt) -> UsageError:
    hints = {
        401: "Check the API key in the variable named by 'api_key_env'.",
        403: "The API key is valid but not allowed to use this model.",
        404: "Check 'base_url' (usually ending in /v1) and 'model' of this entry.",
    }
    hint = hints.get(outcome.status or 0, "Fix the request (params, messages) or the model entry.")
    error = UsageError(f"Model '{name}' at {url} refused the request: {outcome.message}", hint=hint)
    return with_status(error, gateway_status(outcome.status))


_PASSED_THROUGH = frozenset({400, 404, 409, 413, 422, 429})  # the client's own problem, said by the upstream


def gateway_status(upstream: int | None, *, timed_out: bool = False) -> int:
    """The HTTP status a gateway answers for an upstream failure (see the module docstring)."""
    if timed_out:
        return 504
    if upstream in _PASSED_THROUGH:
        return upstream
    return 502  # unreachable, 5xx, or 401/403: our own key to the upstream is wrong, not the client's


E = TypeVar("E", bound=LlmopsError)


def with_status(error: E, status: int) -> E:
    """``error`` marked with the HTTP status a server answers for it (read by llmops_cli.serve.errors)."""
    error.http_status = status  # type: ignore[attr-defined]
    return error


def _error_text(body: str) -> str:
    """The error text an OpenAI-style server put in its body ({"error": {"message": ...}}), else the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:500]
    if isinstance(data, dict):
        detail = data.get("error", data.get("detail", data.get("message")))
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        if detail:
            return str(detail)[:500]
    return body.strip()[:500]


def _server_message(error: urllib.error.HTTPError) -> str:
    """The error text an OpenAI-style server put in its body ({"error": {"message": ...}}), else the body."""
    try:
        body = error.read().decode("utf-8", errors="replace")
    except OSError:
        body = ""
    return _error_text(body) or str(error.reason)


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(getattr(reason, "strerror", None) or reason)
