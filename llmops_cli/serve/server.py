"""Running the app under uvicorn: in the foreground (``llmops serve``) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from llmops_cli.errors import UsageError
from llmops_cli.serve.options import ServeOptions

GRACEFUL_SHUTDOWN_S = 30  # open streams get this long to finish after Ctrl-C / SIGTERM


def run_server(app: Any, options: ServeOptions, *, log_level: str = "info", access_log: bool = True) -> None:
    """Serve ``app`` on ``options.host:port`` until interrupted (uvicorn handles SIGINT and SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise UsageError(
            f"The server could not start on {options.host}:{options.port} (see the log above).",
            hint="Is the port taken? Pick another with --port (0 chooses a free one).",
        )


@contextlib.contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 30.0, graceful_s: int | None = None
) -> Iterator[str]:
    """Run ``app`` in a background thread; yields its base URL (``http://127.0.0.1:PORT``).

    ``port=0`` takes a free ephemeral port. On exit the server shuts down gracefully (lifespan
    shutdown included) before the thread is joined: requests in flight get ``graceful_s`` seconds
    to finish (None: as long as they need), then they are cancelled (answered and logged as 503).
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_s,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="llmops-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise UsageError(f"The server did not start on {host}:{port} within {timeout_s:.0f} s.")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=GRACEFUL_SHUTDOWN_S + 5)
