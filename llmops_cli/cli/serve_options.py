"""The options of ``llmops serve``, as named types (the command's signature stays readable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HostOpt = Annotated[
    str | None, typer.Option("--host", help="Address to listen on (default: the deployment's, or 127.0.0.1).")
]
PortOpt = Annotated[
    int | None, typer.Option("--port", "-p", help="Port (default: the deployment's, or 8000; 0 picks a free one).")
]
PackageOpt = Annotated[
    Path | None,
    typer.Option(
        "--package",
        help="Serve a package archive made by 'llmops package' instead of the project.",
        exists=True,
        dir_okay=False,
    ),
]
DeploymentOpt = Annotated[
    str | None,
    typer.Option(
        "--deployment",
        "-d",
        help="Read host, port, keys variable, concurrency and redaction from deployments.NAME.",
        metavar="NAME",
    ),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model id for requests that name none (and for /ready).")
]
ApiKeysEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--api-keys-env",
        help="Environment variable with comma-separated API keys "
        "(default: LLMOPS_API_KEYS; unset = no authentication).",
        metavar="NAME",
    ),
]
RedactOpt = Annotated[
    bool | None, typer.Option("--redact/--no-redact", help="Mask e-mails and secrets before logging requests.")
]
MaxConcurrencyOpt = Annotated[
    int | None,
    typer.Option("--max-concurrency", min=1, help="Generations at once; more get 429 (default: 64)."),
]
MaxBatchOpt = Annotated[
    int | None, typer.Option("--max-batch", min=1, help="Requests merged into one generate call (default: 8).")
]
MaxBodyOpt = Annotated[
    int | None,
    typer.Option("--max-body-bytes", min=1, help="Largest request body; more gets 413 (default: 1 MiB)."),
]
PublicMetricsOpt = Annotated[
    bool, typer.Option("--public-metrics", help="Serve /metrics without an API key (for scrapers).")
]
AllowCodeOpt = Annotated[
    bool,
    typer.Option(
        "--allow-code",
        help="Let chains' `call` steps run the project's Python functions, and models' trust_remote_code.",
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Monitor store: a SQLite file or a postgresql:// URL (default: $LLMOPS_MONITOR_STORE, "
        "else monitor.store, else .llmops/monitor.db).",
    ),
]
UnpackToOpt = Annotated[
    Path | None,
    typer.Option(
        "--unpack-to",
        help="Where --package is unpacked (default: a folder per archive under LLMOPS_HOME/packages).",
        file_okay=False,
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="Where local models run: auto (a CUDA GPU when torch sees one, else cpu), cpu, cuda or cuda:N "
        "(default: the deployment's serve.device, or auto).",
    ),
]
UpstreamOpt = Annotated[
    str | None,
    typer.Option(
        "--upstream",
        help="Run as a gateway in front of this OpenAI-compatible server (vLLM, another llmops serve): "
        "its models are served with this server's keys, limits, logging and metrics.",
        metavar="URL",
    ),
]
UpstreamKeyEnvOpt = Annotated[
    str | None,
    typer.Option("--upstream-key-env", help="Environment variable with the upstream's API key.", metavar="NAME"),
]
UpstreamTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--upstream-timeout",
        help="Seconds to wait for the upstream's answer or its next streamed piece; longer gets 504 (default: 600).",
    ),
]
UpstreamVerifyOpt = Annotated[
    bool,
    typer.Option(
        "--upstream-verify/--no-upstream-verify",
        help="Check the upstream's TLS certificate; turn off only for an upstream in the same pod "
        "with a self-signed one (KServe's vLLM).",
    ),
]
LogLevelOpt = Annotated[
    str, typer.Option("--log-level", help="uvicorn log level: critical, error, warning, info, debug.")
]
