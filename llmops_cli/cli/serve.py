"""``llmops serve``: the OpenAI-compatible server for this project (or a package archive), in the foreground."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmops_cli.cli import output
from llmops_cli.cli.state import STATE

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.serve import ServeOptions
    from llmops_cli.serve.state import ServerState


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: the deployment's, or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", "-p", help="Port (default: the deployment's, or 8000; 0 picks a free one).")
    ] = None,
    package: Annotated[
        Path | None,
        typer.Option(
            "--package",
            help="Serve a package archive made by 'llmops package' instead of the project.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            "-d",
            help="Read host, port, keys variable, concurrency and redaction from deployments.NAME.",
            metavar="NAME",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model id for requests that name none (and for /ready).")
    ] = None,
    api_keys_env: Annotated[
        str | None,
        typer.Option(
            "--api-keys-env",
            help="Environment variable with comma-separated API keys "
            "(default: LLMOPS_API_KEYS; unset = no authentication).",
            metavar="NAME",
        ),
    ] = None,
    redact: Annotated[
        bool | None, typer.Option("--redact/--no-redact", help="Mask e-mails and secrets before logging requests.")
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option("--max-concurrency", min=1, help="Generations at once; more get 429 (default: 64)."),
    ] = None,
    max_batch: Annotated[
        int | None, typer.Option("--max-batch", min=1, help="Requests merged into one generate call (default: 8).")
    ] = None,
    max_body: Annotated[
        int | None,
        typer.Option("--max-body-bytes", min=1, help="Largest request body; more gets 413 (default: 1 MiB)."),
    ] = None,
    public_metrics: Annotated[
        bool, typer.Option("--public-metrics", help="Serve /metrics without an API key (for scrapers).")
    ] = False,
    allow_code: Annotated[
        bool,
        typer.Option(
            "--allow-code",
            help="Let chains' `call` steps run the project's Python functions, and models' trust_remote_code.",
        ),
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Monitor store: a SQLite file or a postgresql:// URL (default: $LLMOPS_MONITOR_STORE, "
            "else monitor.store, else .llmops/monitor.db).",
        ),
    ] = None,
    unpack_to: Annotated[
        Path | None,
        typer.Option(
            "--unpack-to",
            help="Where --package is unpacked (default: a folder per archive under LLMOPS_HOME/packages).",
            file_okay=False,
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="Where local models run: auto (a CUDA GPU when torch sees one, else cpu), cpu, cuda or cuda:N "
            "(default: the deployment's serve.device, or auto).",
        ),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            "--upstream",
            help="Run as a gateway in front of this OpenAI-compatible server (vLLM, another llmops serve): "
            "its models are served with this server's keys, limits, logging and metrics.",
            metavar="URL",
        ),
    ] = None,
    upstream_key_env: Annotated[
        str | None,
        typer.Option("--upstream-key-env", help="Environment variable with the upstream's API key.", metavar="NAME"),
    ] = None,
    upstream_timeout: Annotated[
        float | None,
        typer.Option(
            "--upstream-timeout",
            help="Seconds to wait for the upstream's answer or its next streamed piece; "
            "longer gets 504 (default: 600).",
        ),
    ] = None,
    upstream_verify: Annotated[
        bool,
        typer.Option(
            "--upstream-verify/--no-upstream-verify",
            help="Check the upstream's TLS certificate; turn off only for an upstream in the same pod "
            "with a self-signed one (KServe's vLLM).",
        ),
    ] = True,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level: critical, error, warning, info, debug.")
    ] = "info",
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
    from llmops_cli.package import prepare_bundle, unpack

    if dest is None:
        from llmops_cli.models.hashing import file_sha256
        from llmops_cli.paths import llmops_home

        dest = llmops_home() / "packages" / f"{archive.name.split('.')[0]}-{file_sha256(archive)[:16]}"
    if (dest / "llmops.yaml").is_file():
        output.info(f"[dim]using {dest} (already unpacked; checking it against its manifest)[/dim]")
        verify = True
    else:
        output.info(f"verifying and unpacking {archive} into {dest}")
        dest = Path(unpack(archive, dest))  # checks every file against the manifest as it is written
        verify = False
    prepare_bundle(dest, verify=verify)  # vector indexes into the local store, model weights ready to load
    return dest
