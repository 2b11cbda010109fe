"""The llmops server: an OpenAI-compatible HTTP API (FastAPI + uvicorn) over a project's models and chains.

``create_app(config, options=ServeOptions(...))`` builds the ASGI app; ``run_server`` serves it in
the foreground and ``serve_in_thread`` in the background. Endpoints: ``GET /v1/models``,
``POST /v1/chat/completions`` and ``/v1/completions`` (``stream: true`` as SSE),
``POST /v1/chains/{name}/invoke``, ``POST /v1/feedback``, ``GET /health``, ``/ready``, ``/metrics``.
Every ``/v1/`` request is logged to the monitor store (:mod:`llmops_cli.monitor`).

Authentication: ``Authorization: Bearer KEY`` with the keys from ``$LLMOPS_API_KEYS`` (or the
variable ``deployments.<env>.api_keys_env`` names) on every endpoint except ``/health`` and
``/ready``, which orchestrators probe without credentials and which reveal nothing but liveness;
``/metrics`` needs a key too unless ``public_metrics`` is set (Prometheus can send a bearer token).

Importing this package is cheap: FastAPI and uvicorn load with ``create_app`` and the runners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops_cli.serve.options import DEFAULT_API_KEYS_ENV, ServeOptions, load_api_keys, resolve_options

if TYPE_CHECKING:
    from llmops_cli.serve.app import create_app
    from llmops_cli.serve.server import run_server, serve_in_thread

__all__ = [
    "DEFAULT_API_KEYS_ENV",
    "ServeOptions",
    "create_app",
    "load_api_keys",
    "resolve_options",
    "run_server",
    "serve_in_thread",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from llmops_cli.serve.app import create_app

        return create_app
    if name in ("run_server", "serve_in_thread"):
        from llmops_cli.serve import server

        return getattr(server, name)
    raise AttributeError(name)
