"""The server's shared state, and what one request records about itself for the monitor store."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from llmops_cli.monitor import MonitorStore, RequestRecord
from llmops_cli.serve.auth import ApiKeys
from llmops_cli.serve.catalog import ModelCatalog, Target
from llmops_cli.serve.errors import overloaded
from llmops_cli.serve.metrics import Metrics
from llmops_cli.serve.options import ServeOptions
from llmops_cli.serve.provenance import Provenance
from llmops_cli.serve.redact import Redactor

if TYPE_CHECKING:
    import anyio

    from llmops_cli.chains import ChainRunner
    from llmops_cli.config import ProjectConfig

T = TypeVar("T")
SCOPE_KEY = "llmops.request"  # where the gate puts the RequestInfo in the ASGI scope


def new_request_id() -> str:
    return "req-" + uuid.uuid4().hex


@dataclass
class RequestInfo:
    """Filled in by the handler while it works; the gate turns it into a monitor record at the end."""

    id: str
    ts: float = field(default_factory=time.time)
    endpoint: str = ""
    model: str | None = None
    adapter: str | None = None
    prompt: str | None = None
    input: str | None = None
    output: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    status: int | None = None  # overrides the HTTP status in the log (a stream that failed after its headers)
    meta: dict[str, Any] = field(default_factory=dict)

    def set_target(self, target: Target, provenance: Provenance) -> None:
        # An upstream's model is named as it serves it: its weights are not ours to fingerprint.
        self.model = provenance.model(target.model) if target.model and target.kind != "upstream" else target.model
        self.adapter = provenance.adapter(target.adapter)
        if target.chain:
            self.meta["chain"] = target.chain

    def record(
        self, status: int, latency_ms: float, provenance: Provenance, redactor: Redactor | None
    ) -> RequestRecord:
        text, value = (redactor.text, redactor.value) if redactor else (_same, _same)
        return RequestRecord(
            id=self.id,
            ts=self.ts,
            endpoint=self.endpoint,
            status=self.status or status,
            model=self.model,
            adapter=self.adapter,
            prompt=self.prompt,
            package=provenance.package,
            git_sha=provenance.git_sha,
            input=text(self.input),
            output=text(self.output),
            latency_ms=latency_ms,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            error=text(self.error),
            meta=value(self.meta),
        )


def _same(value: Any) -> Any:
    return value


class ServerState:
    """Everything the handlers share: config, options, models, store, metrics and admission."""

    def __init__(
        self,
        config: ProjectConfig,
        options: ServeOptions,
        catalog: ModelCatalog,
        store: MonitorStore,
    ) -> None:
        self.config = config
        self.options = options
        self.catalog = catalog
        self.store = store
        self.metrics = Metrics()
        self.provenance = Provenance(config, package=options.package)
        self.keys = ApiKeys(options.api_keys)
        self.redactor = Redactor(options.api_keys) if options.redact else None
        self.started = int(time.time())
        self.admitted = 0  # generations admitted and not finished; event-loop only, so no lock
        self._limiter: anyio.CapacityLimiter | None = None
        self._chains: ChainRunner | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """Worker threads for generations: one per admitted request, so none waits for a thread."""
        if self._limiter is None:
            import anyio

            self._limiter = anyio.CapacityLimiter(self.options.max_concurrency + 4)
        return self._limiter

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread: blocking generation never runs on the event loop."""
        import anyio

        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def admit(self) -> None:
        """Take one generation slot or answer 429 at once (bounded work, never an unbounded queue)."""
        if self.admitted >= self.options.max_concurrency:
            raise overloaded(f"{self.admitted} requests are being generated (limit {self.options.max_concurrency}).")
        self.admitted += 1

    def release(self) -> None:
        self.admitted = max(0, self.admitted - 1)

    @contextlib.asynccontextmanager
    async def admitted_slot(self) -> AsyncIterator[None]:
        self.admit()
        try:
            yield
        finally:
            self.release()

    @property
    def chains(self) -> ChainRunner:
        """One chain runner for the server; its prompt steps use the shared batchers."""
        if self._chains is None:
            from llmops_cli.chains import ChainRunner
            from llmops_cli.serve.chains import ServeRuntime

            runtime = ServeRuntime(self.config, self.catalog)
            self._chains = ChainRunner(
                self.config, runtime=runtime, allow_code=self.options.allow_code, save_traces=False
            )
        return self._chains

    def close(self) -> None:
        self.catalog.close()
        self.store.close()
