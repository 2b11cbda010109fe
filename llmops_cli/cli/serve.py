"""``llmops serve``: the OpenAI-compatible server for this project (or a package archive), in the foreground."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_cli.cli import output
from llmops_cli.cli.serve_options import (
    AllowCodeOpt,
    ApiKeysEnvOpt,
    DeploymentOpt,
    DeviceOpt,
    HostOpt,
    LogLevelOpt,
    MaxBatchOpt,
    MaxBodyOpt,
    MaxConcurrencyOpt,
    ModelOpt,
    PackageOpt,
    PortOpt,
    PublicMetricsOpt,
    RedactOpt,
    StoreOpt,
    UnpackToOpt,
    UpstreamKeyEnvOpt,
    UpstreamOpt,
    UpstreamTimeoutOpt,
    UpstreamVerifyOpt,
)
from llmops_cli.cli.state import STATE

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.serve import ServeOptions
    from llmops_cli.serve.state import ServerState


def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    package: PackageOpt = None,
    deployment: DeploymentOpt = None,
    model: ModelOpt = None,
    api_keys_env: ApiKeysEnvOpt = None,
    redact: RedactOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_batch: MaxBatchOpt = None,
    max_body: MaxBodyOpt = None,
    public_metrics: PublicMetricsOpt = False,
    allow_code: AllowCodeOpt = False,
    store: StoreOpt = None,
    unpack_to: UnpackToOpt = None,
    device: DeviceOpt = None,
    upstream: UpstreamOpt = None,
    upstream_key_env: UpstreamKeyEnvOpt = None,
    upstream_timeout: UpstreamTimeoutOpt = None,
    upstream_verify: UpstreamVerifyOpt = True,
    log_level: LogLevelOpt = "info",
) -> None:
    """Serve the project over HTTP (OpenAI-compatible API, chains, feedback, /health, /ready, /metrics)
    in the foreground until Ctrl-C. Every /v1 request is logged to the monitor store."""
    from llmops_cli.errors import require
    from llmops_cli.serve import resolve_options
    from llmops_cli.validation import load_config

    for module, name in (("fastapi", "fastapi"), ("uvicorn", "uvicorn")):
        require(module, extra="serve", purpose="llmops serve", package=name)
    if allow_code:  # also lets models with trust_remote_code: true load (see llmops_cli.models.trust)
        from llmops_cli.models.trust import allow_project_code

        allow_project_code()
    config = load_config(_unpacked(package, unpack_to)) if package is not None else STATE.config()
    options = resolve_options(
        config,
        deployment=deployment,
        host=host,
        port=port,
        default_model=model,
        api_keys_env=api_keys_env,
        redact=redact,
        max_concurrency=max_concurrency,
        max_batch=max_batch,
        max_body_bytes=max_body,
        public_metrics=public_metrics or None,
        allow_code=allow_code or None,
        store_path=store,
        device=device,
        upstream=upstream,
        upstream_key_env=upstream_key_env,
        upstream_timeout_s=upstream_timeout,
        upstream_verify=None if upstream_verify else False,
    )
    from llmops_cli.serve import create_app, run_server

    app = create_app(config, options=options)
    _announce(config, app.state.llmops.options, app.state.llmops)  # device resolved
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after its graceful shutdown
        run_server(app, options, log_level=log_level)
    output.info("server stopped")


def _announce(config: ProjectConfig, options: ServeOptions, state: ServerState) -> None:
    catalog, store = state.catalog, state.store
    where = f"http://{options.host}:{options.port}" if options.port else f"http://{options.host}:<free port>"
    if catalog.upstream is not None:
        output.info(f"serving [bold]{config.name}[/bold] at {where}/v1 as a gateway to {catalog.upstream.base_url}")
    else:
        output.info(
            f"serving [bold]{config.name}[/bold] at {where}/v1 "
            f"(default model: {catalog.default.id}, device: {options.device})"
        )
    output.info(f"[dim]requests are logged to {store.display}{' (redacted)' if options.redact else ''}[/dim]")
    if not options.auth_enabled:
        output.warn(
            f"API keys are OFF: anyone who can reach {options.host}:{options.port} can use this server. "
            f"Set {options.api_keys_env}=key1,key2 to require 'Authorization: Bearer <key>'."
        )


def _unpacked(archive: Path, dest: Path | None) -> Path:
    """The folder ``archive`` is unpacked into (once per archive content: a re-run reuses it)."""
    import importlib.util

    from llmops_cli.errors import UsageError

    if importlib.util.find_spec("llmops_cli.package") is None:
        raise UsageError(
            "Serving a package archive needs 'llmops package' support, which this installation lacks.",
            hint=f"Unpack it yourself (mkdir app && tar xzf {archive} -C app) and run 'llmops -C app serve'.",
        )
    from llmops_cli.package.serving import default_unpack_dir, is_unpacked, unpack_for_serving

    dest = dest or default_unpack_dir(archive)
    if is_unpacked(dest):
        output.info(f"[dim]using {dest} (already unpacked; checking it against its manifest)[/dim]")
    else:
        output.info(f"verifying and unpacking {archive} into {dest}")
    return unpack_for_serving(archive, dest)
