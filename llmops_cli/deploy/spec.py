"""A ``deployments:`` entry as deploy works with it, and the names it gives Kubernetes objects."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_KEYS_ENV = "LLMOPS_API_KEYS"  # the server's default (llmops_cli.serve.options)
CONTAINER_PORT = 8000  # what the package's Dockerfile CMD listens on
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class DeploymentSpec:
    """One ``deployments.ENV`` entry with the schema's defaults filled in."""

    env: str
    target: str  # local | kubernetes | docker
    package: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_keys_env: str | None = None  # None: the server's default variable
    runtime: str = "llmops"  # llmops | vllm | kserve (kubernetes)
    replicas: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    namespace: str | None = None
    image: str | None = None
    max_concurrency: int | None = None
    redact: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def keys_env(self) -> str:
        """The variable that holds the API keys (containers always get one)."""
        return self.api_keys_env or DEFAULT_KEYS_ENV

    @property
    def gpus(self) -> int:
        return int(self.resources.get("gpu") or 0)

    def with_entry(self, entry: dict[str, Any]) -> DeploymentSpec:
        """The same environment with a recorded entry (rollback re-deploys what was deployed)."""
        return spec_from_entry(self.env, entry)


def spec_from_entry(env: str, entry: dict[str, Any]) -> DeploymentSpec:
    return DeploymentSpec(
        env=env,
        target=str(entry["target"]),
        package=str(entry["package"]),
        host=str(entry.get("host") or DEFAULT_HOST),
        port=int(entry.get("port") or DEFAULT_PORT),
        api_keys_env=entry.get("api_keys_env"),
        runtime=str(entry.get("runtime") or "llmops"),
        replicas=int(entry.get("replicas") or 1),
        resources=dict(entry.get("resources") or {}),
        namespace=entry.get("namespace"),
        image=entry.get("image"),
        max_concurrency=entry.get("max_concurrency"),
        redact=entry.get("redact"),
        raw=dict(entry),
    )


def deployment_spec(config: ProjectConfig, env: str) -> DeploymentSpec:
    """``deployments.<env>`` of ``config``; a clear error (with a suggestion) when there is none."""
    if env not in config.deployments:
        declared = ", ".join(sorted(config.deployments)) or "none"
        close = difflib.get_close_matches(env, list(config.deployments), n=1)
        hint = f"Did you mean '{close[0]}'?" if close else "Declare it under 'deployments:' in llmops.yaml."
        raise UsageError(f"Unknown deployment '{env}' (declared: {declared}).", hint=hint)
    spec = spec_from_entry(env, dict(config.deployments[env].raw))
    if spec.package not in config.packages:
        raise UsageError(
            f"deployment '{env}' deploys package '{spec.package}', which is not declared under 'packages:'.",
            hint="Fix 'package:' of the deployment, or declare the package.",
        )
    return spec


def dns_label(text: str, max_len: int = 63) -> str:
    """``text`` as an RFC 1123 label (lowercase alphanumerics and '-'), as Kubernetes names need."""
    label = _NOT_DNS.sub("-", text.lower()).strip("-")[:max_len].rstrip("-")
    return label or "llmops"


def release_name(spec: DeploymentSpec) -> str:
    """The base name of every object a deployment renders: ``PACKAGE-ENV`` (room left for suffixes)."""
    package, env = dns_label(spec.package), dns_label(spec.env)
    name = package if package == env else f"{package}-{env}"
    return dns_label(name, max_len=40)
