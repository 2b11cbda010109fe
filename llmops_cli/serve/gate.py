"""The ASGI middleware every HTTP request passes first: id, key check, size limit, metrics, log.

In order, for each request:

1. a request id (``x-request-id`` on the answer, ``id`` in OpenAI bodies, the monitor store key);
2. the API key, except on the open paths (``/health``, ``/ready``, and ``/metrics`` when public);
3. a declared ``Content-Length`` above the limit is answered 413 before the body is read; a body
   without one is counted as it arrives and stopped with a 413 once it passes the limit;
4. the app runs; an exception that escapes it becomes a 500 in OpenAI's shape, never a dead server;
5. metrics are updated and, for ``/v1/...`` routes, the request is queued for the monitor store.

Metric labels and log rows name the route template (``/v1/models/{model_id}``), never the raw path:
every path that matches no route shares the label ``unmatched`` and is not logged, so random paths
(authenticated or not) cannot grow ``/metrics`` or the store with per-path values.

A request whose task is cancelled (uvicorn's graceful shutdown ran out of time) is answered 503 if
nothing was sent yet, logged once as 503 with why, and ends quietly (no traceback in the log).

A pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``), so streamed answers pass through
chunk by chunk and the request is logged when its last chunk has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from llmops_cli.serve.errors import ApiError, unauthorized
from llmops_cli.serve.state import SCOPE_KEY, RequestInfo, new_request_id

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from llmops_cli.serve.state import ServerState

log = logging.getLogger("llmops.serve")
OPEN_PATHS = frozenset({"/health", "/ready"})
LOGGED_PREFIX = "/v1/"
UNMATCHED = "unmatched"  # the one label (and no log row) for every path no route matches
SHUTDOWN_STATUS = 503
SHUTDOWN_MESSAGE = "The server shut down before the answer was finished."
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")  # "{model_id:path}" -> "{model_id}"


class Gate:
    def __init__(self, app: ASGIApp, state: ServerState, routes: list[Any]) -> None:
        self.app = app
        self.state = state
        self.routes = routes
        self._leaves: list[Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        info = RequestInfo(id=new_request_id(), endpoint=self._endpoint(scope))
        client_id = _header(scope, b"x-request-id")
        if client_id:  # the caller's own trace id is kept next to ours (never used as the key)
            info.meta["client_request_id"] = client_id[:200]
        scope[SCOPE_KEY] = info
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", info.id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        state.metrics.started()
        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                info.error = refusal.message
                await _send_error(send_with_id, refusal)
            else:
                await self.app(scope, _limited(receive, self.state.options.max_body_bytes), send_with_id)
        except Exception as error:  # the app's handlers map known errors; this is the last line
            log.exception("request %s failed", info.id)
            info.error = f"{type(error).__name__}: {error}"
            if not response_started:
                await _send_error(send_with_id, ApiError(500, "Internal server error.", type="server_error"))
        except asyncio.CancelledError:  # only a shutdown cancels a request's task (see the module doc)
            info.status, info.error = SHUTDOWN_STATUS, SHUTDOWN_MESSAGE
            if not response_started:
                with contextlib.suppress(Exception):
                    await _send_error(send_with_id, ApiError(SHUTDOWN_STATUS, SHUTDOWN_MESSAGE, type="server_error"))
            status = SHUTDOWN_STATUS
        finally:
            seconds = time.perf_counter() - started
            state.metrics.finished(info.endpoint, status, seconds)
            state.metrics.add_tokens(info.prompt_tokens, info.completion_tokens)
            if info.endpoint.startswith(LOGGED_PREFIX):  # a route template; "unmatched" is never logged
                self._log(info, status, seconds * 1000)

    def _refusal(self, scope: Scope) -> ApiError | None:
        path = scope["path"]
        public = path in OPEN_PATHS or (path == "/metrics" and self.state.options.public_metrics)
        if not public and not self.state.keys.check_header(_header(scope, b"authorization")):
            return unauthorized()
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.state.options.max_body_bytes:
            return ApiError(
                413,
                f"The request body ({length} bytes) is larger than this server accepts "
                f"({self.state.options.max_body_bytes} bytes).",
                code="request_too_large",
            )
        return None

    def _endpoint(self, scope: Scope) -> str:
        """The route template (``/v1/chains/{name}/invoke``), so metrics have few label values."""
        if self._leaves is None:  # on the first request: every route is registered by then
            self._leaves = _leaf_routes(self.routes)
        for route in self._leaves:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                path = getattr(route, "path", None)
                return _CONVERTOR.sub(r"{\1}", path) if isinstance(path, str) else UNMATCHED
        return UNMATCHED

    def _log(self, info: RequestInfo, status: int, latency_ms: float) -> None:
        state = self.state
        try:
            state.store.log_request(info.record(status, latency_ms, state.provenance, state.redactor))
        except Exception:  # the request log must never break serving
            log.exception("could not log request %s to the monitor store", info.id)


def _leaf_routes(routes: list[Any]) -> list[Any]:
    """The routes with a path of their own: FastAPI >= 0.16x wraps an included router in one
    route object (``original_router``) whose ``matches`` says FULL for any of its paths."""
    leaves: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None and isinstance(getattr(inner, "routes", None), list):
            leaves += _leaf_routes(inner.routes)  # llmops includes its router without a prefix
        else:
            leaves.append(route)
    return leaves


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises a 413 once more than ``limit`` body bytes have arrived.

    An ``HTTPException`` because FastAPI passes exactly that type through from reading a body
    (anything else becomes a 400); the app's handler then answers in OpenAI's shape.
    """
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise StarletteHTTPException(
                    413, f"The request body is larger than this server accepts ({limit} bytes)."
                )
        return message

    return receive_limited


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _send_error(send: Send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii"))]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
