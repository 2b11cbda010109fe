"""Errors the server answers with, in OpenAI's shape, so OpenAI clients raise the right exception.

Body: ``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``. The ``type`` names
follow OpenAI's (``invalid_request_error``, ``authentication_error``, ``rate_limit_error``...).
"""

from __future__ import annotations

from typing import Any

from llmops_cli.errors import LlmopsError, UnavailableError, UsageError

RETRY_AFTER_S = 1  # what overloaded answers suggest; the queue drains in well under a second per batch


class ApiError(Exception):
    """An HTTP error answer: status, OpenAI-style body and optional headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)


def error_body(message: str, *, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "Missing or invalid API key. Send it as 'Authorization: Bearer <key>'.",
        type="authentication_error",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


def overloaded(detail: str) -> ApiError:
    return ApiError(
        429,
        f"The server is busy: {detail} Retry after {RETRY_AFTER_S} s.",
        type="rate_limit_error",
        code="overloaded",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def from_llmops_error(error: LlmopsError) -> ApiError:
    """The HTTP answer for an error raised by the core while serving a request."""
    from llmops_cli.providers.batching import Overloaded

    message = error.message + (f" {error.hint}" if error.hint else "")
    if isinstance(error, Overloaded):
        return overloaded(error.message)
    status = getattr(error, "http_status", None)  # set by an upstream (OpenAI HTTP) provider: see gateway_status
    if isinstance(status, int):
        kinds = {429: "rate_limit_error", 502: "upstream_error", 504: "upstream_timeout"}
        kind = kinds.get(status, "invalid_request_error" if status < 500 else "server_error")
        return ApiError(status, message, type=kind, code=kinds.get(status, "upstream_refused"))
    if isinstance(error, UsageError):  # a bad request: unknown chain input, a template rejecting messages...
        return ApiError(400, message, type="invalid_request_error")
    if isinstance(error, UnavailableError):  # a model or remote that is not reachable right now
        return ApiError(503, message, type="service_unavailable", code="unavailable")
    return ApiError(500, message, type="server_error", code="internal_error")
