"""The gateway mode of the server (``llmops serve --upstream URL``): models served by another server.

The upstream is any OpenAI-compatible server (vLLM, another ``llmops serve``, llama.cpp's server).
Its models become targets of kind ``upstream`` in the catalog; each gets one
:class:`~llmops_cli.providers.openai_http.OpenAIProvider` behind the usual batcher, set to forward
every request at once (no batch wait, ``max_concurrency`` calls in flight), so the existing routes,
gate (API keys, size limits, metrics) and request log apply unchanged. Streaming reads the
upstream's SSE events with httpx and hands each delta on as it arrives.

The upstream's model list is asked for at start-up, on ``GET /v1/models``, and when a request names
a model not seen yet, at most once per :data:`LIST_TTL_S`; ``/ready`` asks it at most once per
:data:`READY_TTL_S` and is 503 with the reason while it does not answer.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from llmops_cli.errors import LlmopsError, UsageError
from llmops_cli.serve.errors import ApiError, from_llmops_error

if TYPE_CHECKING:
    from llmops_cli.providers.openai_http import OpenAIProvider
    from llmops_cli.serve.catalog import Readiness, Target
    from llmops_cli.serve.options import ServeOptions

LIST_TTL_S = 5.0
READY_TTL_S = 1.0
PROBE_TIMEOUT_S = 3.0  # /ready must answer before the orchestrator's probe times out (5 s in our manifests)
UPSTREAM = "upstream"


def upstream_base(url: str) -> str:
    """The upstream's OpenAI base URL (ending in ``/v1``) from what the user gave: its root or its /v1."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"--upstream {url!r} is not an http(s) URL.",
            hint="Give the upstream server's address, e.g. --upstream http://127.0.0.1:8001 (its /v1 is added).",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"--upstream {url!r}: the URL must not have a query or fragment.")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


class Upstream:
    """The upstream server of a gateway: its model list, its readiness and one provider per model."""

    def __init__(self, options: ServeOptions) -> None:
        assert options.upstream is not None
        self.base_url = upstream_base(options.upstream)
        self.options = options
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._models: list[str] = []
        self._listed_at = float("-inf")
        self._probed_at = float("-inf")
        self._providers: dict[str, OpenAIProvider] = {}
        self._lister = self._provider("")  # a provider only used for GET /models

    # --- models --------------------------------------------------------------------------------

    def models(self, *, fresh: bool = False) -> list[str]:
        """The upstream's model ids (remembered for LIST_TTL_S; raises ApiError 502/504 when it fails)."""
        with self._lock:
            known, age = list(self._models), time.monotonic() - self._listed_at
        if known and not fresh and age < LIST_TTL_S:
            return known
        try:
            listed = [str(entry["id"]) for entry in self._lister.list_models(PROBE_TIMEOUT_S)]
        except LlmopsError as error:
            raise from_llmops_error(error) from None
        with self._lock:
            self._models, self._listed_at = listed, time.monotonic()
        return listed

    def known(self) -> list[str]:
        """The last model list seen, without asking the upstream."""
        with self._lock:
            return list(self._models)

    def target(self, model_id: str) -> Target:
        from llmops_cli.serve.catalog import Target

        return Target(model_id, UPSTREAM, model=model_id)

    def resolve(self, model_id: str | None) -> Target:
        """The target for a request's ``model``: the named upstream model, or its first one; 404 if unknown."""
        if model_id:
            if model_id in self.known():
                return self.target(model_id)
            with self._lock:
                stale = time.monotonic() - self._listed_at >= LIST_TTL_S
            if stale and model_id in self.models(fresh=True):  # a model the upstream added since
                return self.target(model_id)
            raise ApiError(
                404,
                f"The model '{model_id}' does not exist on the upstream {self.base_url}. "
                "GET /v1/models lists the ones it serves.",
                code="model_not_found",
                param="model",
            )
        if self.options.default_model:
            return self.target(self.options.default_model)
        listed = self.known() or self.models()
        if not listed:
            raise ApiError(502, f"The upstream {self.base_url} serves no model.", type="upstream_error")
        return self.target(listed[0])

    def default_id(self) -> str:
        """What /ready names as the default model (without asking the upstream)."""
        listed = self.known()
        return self.options.default_model or (listed[0] if listed else UPSTREAM)

    # --- readiness -----------------------------------------------------------------------------

    def check(self, readiness: Readiness, *, force: bool = False) -> None:
        """Ask the upstream for its models (at most once per READY_TTL_S) and set ``readiness``.

        A check that finds another under way waits for its answer instead of starting a second one.
        """
        with self._probe_lock:
            if not force and time.monotonic() - self._probed_at < READY_TTL_S:
                return
            try:
                listed = self.models(fresh=True)
            except ApiError as error:
                readiness.set("error", f"upstream not ready: {error.message}")
                return
            finally:
                self._probed_at = time.monotonic()
            default = self.options.default_model
            if default and default not in listed:
                readiness.set("error", f"the upstream {self.base_url} does not serve --model {default}")
            else:
                readiness.set("ready")

    # --- providers -----------------------------------------------------------------------------

    def provider(self, model: str) -> OpenAIProvider:
        with self._lock:
            provider = self._providers.get(model)
            if provider is None:
                provider = self._providers[model] = self._provider(model)
            return provider

    def _provider(self, model: str) -> OpenAIProvider:
        from llmops_cli.providers.openai_http import OpenAIProvider

        options = self.options
        return OpenAIProvider(
            name=model or UPSTREAM,
            base_url=self.base_url,
            model=model or UPSTREAM,
            api_key_env=options.upstream_key_env,
            timeout_s=options.upstream_timeout_s,
            max_retries=0,  # a gateway does not multiply load on a struggling upstream; clients retry
            concurrency=options.max_concurrency,
            verify_tls=options.upstream_verify,
        )

    def close(self) -> None:
        with self._lock:
            providers = [*self._providers.values(), self._lister]
        for provider in providers:
            provider.close()
