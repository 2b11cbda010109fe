"""Looking up a ``deployments:`` entry for deploy, and the names it gives Kubernetes objects.

The entry itself is parsed once, with the project config (:mod:`llmops_cli.config.deployments`).
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.deployments import DeploymentSpec

CONTAINER_PORT = 8000  # what the package's Dockerfile CMD listens on
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def deployment_spec(config: ProjectConfig, env: str) -> DeploymentSpec:
    """``deployments.<env>`` of ``config``; a clear error (with a suggestion) when there is none."""
    if env not in config.deployments:
        declared = ", ".join(sorted(config.deployments)) or "none"
        close = difflib.get_close_matches(env, list(config.deployments), n=1)
        hint = f"Did you mean '{close[0]}'?" if close else "Declare it under 'deployments:' in llmops.yaml."
        raise UsageError(f"Unknown deployment '{env}' (declared: {declared}).", hint=hint)
    spec = config.deployments[env]
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
