"""How a server runs: address, keys, limits, batching and logging, from flags and ``deployments:``.

Precedence: an explicit value (CLI flag or keyword) beats the deployment entry, which beats the
defaults here. Nothing in this module imports FastAPI, so deploy tooling can build options cheaply.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError
from llmops_cli.monitor.locations import is_postgres_url

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig

DEFAULT_API_KEYS_ENV = "LLMOPS_API_KEYS"
DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: far above any chat request, far below a memory problem
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_MAX_TOKENS_LIMIT = 2048
DEFAULT_UPSTREAM_TIMEOUT_S = 600.0  # longest wait for the upstream's answer (or its next streamed piece)
DEVICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


@dataclass(frozen=True)
class ServeOptions:
    """Settings of one server. ``api_keys`` empty means authentication is off."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()
    api_keys_env: str = DEFAULT_API_KEYS_ENV
    default_model: str | None = None  # model id used when a request names none (and for /ready)
    package: str | None = None  # the package being served (for versions in the request log)
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT  # largest max_tokens a request may ask for
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY  # generations admitted at once; more get 429
    max_batch: int = 8
    max_wait_ms: float = 10.0
    redact: bool = False
    public_metrics: bool = False  # /metrics without a key (for scrapers that cannot send one)
    allow_code: bool = False  # chains' `call` steps may run project code
    store_path: Path | str | None = None  # a file or a postgresql:// URL; default: the project's monitor store
    device: str = "auto"  # auto | cpu | cuda | cuda:N; create_app resolves auto (see resolve_device)
    upstream: str | None = None  # gateway mode: an OpenAI-compatible server that does the generating
    upstream_key_env: str | None = None  # the variable holding the upstream's API key
    upstream_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S
    upstream_verify: bool = True  # check the upstream's TLS certificate (off only for a same-pod upstream)
    warm: bool = True  # load the default model in the background at start-up

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    def with_(self, **changes: Any) -> ServeOptions:
        return replace(self, **changes)


def load_api_keys(env_name: str, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The comma-separated keys in ``$env_name``; () when it is unset (authentication off).

    A variable that is set but holds no key is an error rather than "no authentication": an empty
    secret in a deployment is far more likely a mistake than a wish to serve openly.
    """
    env = os.environ if environ is None else environ
    raw = env.get(env_name)
    if raw is None:
        return ()
    keys = tuple(dict.fromkeys(k.strip() for k in raw.split(",") if k.strip()))
    if not keys:
        raise UsageError(
            f"The environment variable {env_name} is set but holds no API key.",
            hint=f"Put comma-separated keys in it, or unset {env_name} to serve without authentication.",
        )
    return keys


def resolve_options(
    config: ProjectConfig,
    *,
    deployment: str | None = None,
    environ: dict[str, str] | None = None,
    **explicit: Any,
) -> ServeOptions:
    """Options for serving ``config``: ``explicit`` values (None means unset) over ``deployments.<deployment>``.

    ``api_keys`` are read from the environment variable the deployment (or ``api_keys_env``) names.
    """
    values: dict[str, Any] = {}
    if deployment is not None:
        if deployment not in config.deployments:
            declared = ", ".join(config.deployments) or "none"
            raise UsageError(
                f"No deployment named '{deployment}' in {config.path.name}.", hint=f"Declared: {declared}."
            )
        spec = config.deployments[deployment]
        values = {
            "host": spec.host,
            "port": spec.port,
            "api_keys_env": spec.api_keys_env,
            "max_concurrency": spec.max_concurrency,
            "redact": spec.redact,
            "package": spec.package,
            "device": spec.device,
        }
    values.update({k: v for k, v in explicit.items() if v is not None})
    if values.get("package") is None:
        values["package"] = _only_package(config)
    settings = {k: v for k, v in values.items() if v is not None}
    if "store_path" in settings and not is_postgres_url(str(settings["store_path"])):
        settings["store_path"] = Path(settings["store_path"])  # a postgresql:// URL stays a string
    options = ServeOptions(**settings)
    if "api_keys" not in explicit or explicit["api_keys"] is None:
        options = options.with_(api_keys=load_api_keys(options.api_keys_env, environ))
    _check(options)
    return options


PACKAGE_MANIFEST = "manifest.json"  # at the root of an unpacked package (see llmops_cli.package)


def _only_package(config: ProjectConfig) -> str | None:
    """The package an unpacked package folder serves: its manifest's, else its one ``packages:`` entry."""
    manifest = config.root / PACKAGE_MANIFEST
    if not manifest.is_file():
        return None
    try:
        named = json.loads(manifest.read_text(encoding="utf-8")).get("package")
    except (OSError, ValueError, AttributeError):
        named = None
    if isinstance(named, str) and named in config.packages:
        return named
    return next(iter(config.packages)) if len(config.packages) == 1 else None


def _check(options: ServeOptions) -> None:
    if not 0 <= options.port <= 65535:
        raise UsageError(f"--port {options.port} is not a TCP port (0-65535; 0 picks a free one).")
    for name in ("max_body_bytes", "max_tokens_limit", "max_concurrency", "max_batch"):
        if getattr(options, name) < 1:
            raise UsageError(f"{name} must be at least 1, not {getattr(options, name)}.")
    if not _DEVICE.match(options.device):
        raise UsageError(f"--device {options.device!r} is not a device llmops serve knows.", hint=f"Use {DEVICES}.")
    if options.upstream is not None:
        from llmops_cli.serve.upstream import upstream_base

        upstream_base(options.upstream)  # raises on a URL that is not one
        if not options.upstream_timeout_s > 0:
            raise UsageError(f"--upstream-timeout must be more than 0 s, not {options.upstream_timeout_s:g}.")
        key_env = options.upstream_key_env
        if key_env and not os.environ.get(key_env):
            raise UsageError(
                f"--upstream-key-env {key_env}: the variable is not set (or empty).",
                hint=f"Export {key_env}=<the upstream's API key>, or leave out --upstream-key-env if it needs none.",
            )
    elif options.upstream_key_env:
        raise UsageError("--upstream-key-env is for a gateway: give --upstream URL too.")


def resolve_device(options: ServeOptions) -> ServeOptions:
    """``options`` with ``device`` made concrete: ``auto`` is cuda when torch sees a GPU, else cpu.

    cuda (or cuda:N) without such a GPU is a UsageError (exit 2) here, before any model loads. A
    gateway generates nothing itself, so its device is left alone (and torch is not imported).
    """
    if options.upstream is not None:
        return options
    asked = options.device
    if asked == "cpu":
        return options
    from llmops_cli.errors import require

    require("torch", extra="models", purpose=f"--device {asked}")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if asked == "auto":
        return options.with_(device="cuda" if count else "cpu")
    index = int(asked.partition(":")[2] or 0)
    if count == 0:
        raise UsageError(
            f"--device {asked}: torch sees no CUDA GPU on this machine.",
            hint="Use --device cpu (or auto, which picks a GPU only when there is one).",
        )
    if index >= count:
        raise UsageError(
            f"--device {asked}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}.",
            hint="Pick one of those, or --device cuda for the first.",
        )
    return options
