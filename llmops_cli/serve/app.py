"""``create_app``: the FastAPI application that serves one project (or unpacked package).

At start-up (the ASGI lifespan) a background thread loads the default model, so ``/health``
answers at once and ``/ready`` turns 200 when the model is in memory. At shutdown the batchers stop
and the monitor store writes what it still holds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmops_cli import __version__
from llmops_cli.errors import LlmopsError
from llmops_cli.monitor import MonitorStore, open_store
from llmops_cli.serve.catalog import ModelCatalog, ProviderFactory
from llmops_cli.serve.errors import ApiError, from_llmops_error
from llmops_cli.serve.gate import Gate
from llmops_cli.serve.options import ServeOptions, resolve_device
from llmops_cli.serve.routes import router, stop_generations
from llmops_cli.serve.schemas import UNENCODABLE
from llmops_cli.serve.state import SCOPE_KEY, ServerState

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig

log = logging.getLogger("llmops.serve")
_STATUS_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


def create_app(
    config: ProjectConfig,
    *,
    options: ServeOptions | None = None,
    provider_factory: ProviderFactory | None = None,
    store: MonitorStore | None = None,
) -> FastAPI:
    """The server for ``config``.

    ``provider_factory(model_name, adapter_folder)`` replaces the project's providers (another
    backend, or a stand-in in tests); ``store`` replaces the project's monitor store.
    """
    options = resolve_device(options or ServeOptions())
    catalog = ModelCatalog(config, options, provider_factory=provider_factory)
    state = ServerState(config, options, catalog, store or open_store(config, options.store_path))
    _register_gauges(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not options.auth_enabled:
            log.warning(
                "API keys are OFF: anyone who can reach this server can use it. "
                "Set %s to comma-separated keys to require 'Authorization: Bearer <key>'.",
                options.api_keys_env,
            )
        if options.warm:
            warm = threading.Thread(target=catalog.warm, args=(_remember_version(state),), name="llmops-warm")
            warm.daemon = True
            warm.start()
        else:
            catalog.readiness.set("ready")
        try:
            yield
        finally:
            await stop_generations(app, state)  # cancel what still runs; its requests get logged first
            state.close()

    app = FastAPI(
        title=f"llmops: {config.name}",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.llmops = state
    app.include_router(router)
    _add_error_handlers(app)
    app.add_middleware(Gate, state=state, routes=app.router.routes)
    return app


def _remember_version(state: ServerState) -> Any:
    def on_loaded(target: Any) -> None:
        if target.model:
            state.provenance.model(target.model)  # hash the weights now, not on the first request

    return on_loaded


def _register_gauges(state: ServerState) -> None:
    metrics = state.metrics
    metrics.gauges["llmops_model_ready"] = (
        "1 once the default model is loaded.",
        lambda: 1.0 if state.catalog.readiness.ready else 0.0,
    )
    metrics.gauges["llmops_generation_queue"] = (
        "Generation requests waiting for their model's next batch.",
        lambda: float(state.catalog.queue_depth()),
    )
    metrics.counters["llmops_monitor_write_errors_total"] = (
        "Request-log rows lost because the monitor store could not be written.",
        lambda: float(state.store.write_errors),
    )


def _answer(request: Request, error: ApiError) -> JSONResponse:
    info = request.scope.get(SCOPE_KEY)
    if info is not None:
        info.error = error.message
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return _answer(request, error)

    async def llmops_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, LlmopsError)
        return _answer(request, from_llmops_error(error))

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _answer(request, _validation_answer(error))

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        kind = _STATUS_TYPES.get(
            error.status_code, "invalid_request_error" if error.status_code < 500 else "server_error"
        )
        code = "request_too_large" if error.status_code == 413 else None
        answer = ApiError(error.status_code, str(error.detail), type=kind, code=code, headers=dict(error.headers or {}))
        return _answer(request, answer)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(LlmopsError, llmops_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _validation_answer(error: RequestValidationError) -> ApiError:
    """400 for a body that is not JSON at all, 422 for JSON of the wrong shape (the fields named)."""
    problems = list(error.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        return ApiError(400, "The request body is not valid JSON.", code="invalid_json")
    unencodable = next((p for p in problems if p.get("type") == UNENCODABLE), None)
    if unencodable is not None:  # valid JSON, but no tokenizer, answer or log can take it: 400
        loc = [str(x) for x in unencodable.get("loc", ()) if x != "body" and x != "str" and "[" not in str(x)]
        where = ".".join(loc) or "body"
        return ApiError(400, f"Invalid text in {where}: {unencodable.get('msg')}.", param=where, code="invalid_text")
    if any(p.get("type") == "model_attributes_type" and tuple(p.get("loc", ())) == ("body",) for p in problems):
        return ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    parts = []
    for problem in problems[:5]:
        where = ".".join(str(x) for x in problem.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    first = problems[0] if problems else {}
    param = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or None
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return ApiError(422, "Invalid request: " + "; ".join(parts) + more, param=param, code="invalid_request")
