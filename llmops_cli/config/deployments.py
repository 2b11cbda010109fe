"""``deployments:`` entries, typed: where and how a package runs, with the schema's defaults filled in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_KEYS_ENV = "LLMOPS_API_KEYS"  # the server's default (llmops_cli.serve.options)


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
    resources: Mapping[str, Any] = field(default_factory=dict)
    namespace: str | None = None
    image: str | None = None
    max_concurrency: int | None = None
    redact: bool | None = None
    device: str | None = None  # serve.device; None: not set (auto, or cuda with GPUs on Kubernetes)
    description: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the entry as written

    @property
    def keys_env(self) -> str:
        """The variable that holds the API keys (containers always get one)."""
        return self.api_keys_env or DEFAULT_KEYS_ENV

    @property
    def gpus(self) -> int:
        return int(self.resources.get("gpu") or 0)

    def as_written(self) -> dict[str, Any]:
        """The entry as llmops.yaml (or a deployment record) has it: what a record stores for rollback."""
        return dict(self.raw)


def parse_deployment(env: str, entry: Mapping[str, Any]) -> DeploymentSpec:
    """``deployments.<env>`` (from llmops.yaml, or as a deployment record stored it) as a spec."""
    serve = entry.get("serve") or {}
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
        device=serve.get("device"),
        description=entry.get("description"),
        raw=dict(entry),
    )


def parse_deployments(section: Mapping[str, Any] | None) -> dict[str, DeploymentSpec]:
    """The ``deployments:`` section: environment name -> spec."""
    return {env: parse_deployment(env, entry) for env, entry in (section or {}).items()}
