"""The llmops gateway in front of vLLM and KServe, the device flag, and where pods log requests.

* vLLM: the gateway is a second container in the vLLM pod (``llmops serve --upstream
  http://127.0.0.1:VLLM_PORT``). Same pod, so it scales with vLLM, reaches it over loopback (no
  extra network hop), and the Service's ``http`` port is the gateway's: every request passes the
  API keys, size limits, request log and ``/metrics`` of the llmops runtime. vLLM keeps its own
  key (``VLLM_API_KEY``), which only the gateway holds.
* KServe builds the vLLM pod itself, so the gateway is a separate Deployment whose Service is the
  entry point; it calls KServe's workload Service over the cluster network (TLS with KServe's
  self-signed certificate, hence ``--no-upstream-verify``).
* The monitor store (``monitor.store``): a PostgreSQL URL reaches every pod through a Secret
  (``LLMOPS_MONITOR_STORE``, which the server reads before llmops.yaml); a SQLite file is per pod,
  so several replicas with SQLite are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llmops_cli.deploy.k8s import SECRET_DIR, image_of, labels, metadata, probe, secret_name
from llmops_cli.deploy.spec import CONTAINER_PORT, release_name
from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.deployments import DeploymentSpec
    from llmops_cli.deploy.k8s import Rendered
    from llmops_cli.deploy.package_ref import PackageRef

STORE_ENV = "LLMOPS_MONITOR_STORE"  # read by the server before monitor.store (llmops_cli.monitor.store)
GATEWAY_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
SERVING_CONTAINERS = ("server", "gateway")  # the containers that run llmops serve (and log requests)


def serve_device(spec: DeploymentSpec) -> str | None:
    """The ``--device`` of the llmops server: ``serve.device``, else cuda when GPUs are requested."""
    if spec.device:
        return spec.device
    return "cuda" if spec.gpus > 0 else None


def serve_flags(spec: DeploymentSpec) -> list[str]:
    """Flags every llmops server of a deployment gets: keys variable, concurrency, redaction."""
    flags = ["--api-keys-env", spec.keys_env]
    if spec.max_concurrency:
        flags += ["--max-concurrency", str(spec.max_concurrency)]
    if spec.redact is not None:
        flags.append("--redact" if spec.redact else "--no-redact")
    return flags


def gateway_container(
    spec: DeploymentSpec, package: PackageRef, *, upstream: str, key_env: str | None, verify: bool = True
) -> dict[str, Any]:
    """``llmops serve --upstream`` from the package image, on the ``http`` port."""
    command = ["llmops", "-C", "/app", "serve", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
    command += serve_flags(spec) + ["--upstream", upstream]
    env = [_secret_env(spec.keys_env, secret_name(spec))]
    if key_env:
        command += ["--upstream-key-env", key_env]
        env.append(_secret_env(key_env, secret_name(spec)))
    if not verify:
        command.append("--no-upstream-verify")
    return {
        "name": "gateway",
        "image": image_of(spec, package),
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": env,
        # /ready is 200 while the upstream answers /v1/models (not while vLLM loads); /health always.
        "readinessProbe": probe("/ready", period=5, failures=3, delay=5),
        "livenessProbe": probe("/health", period=20, failures=3, delay=10),
        "resources": {k: dict(v) for k, v in GATEWAY_RESOURCES.items()},
    }


def keys_secret(spec: DeploymentSpec, package: PackageRef, keys: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(spec, secret_name(spec), labels(spec, package, "api-keys")),
        "type": "Opaque",
        "stringData": dict.fromkeys(keys, ""),
    }


def keys_comment(spec: DeploymentSpec, keys: list[str]) -> str:
    ns = f" -n {spec.namespace}" if spec.namespace else ""
    literals = " ".join(f'--from-literal={k}="$(openssl rand -hex 24)"' for k in keys)
    return (
        f"Placeholder only: {', '.join(keys)} are empty on purpose, and the servers refuse to start until\n"
        f"they hold keys ({keys[0]}: the clients' comma-separated keys; "
        f"{'the key only the gateway uses to call vLLM' if len(keys) > 1 else ''}).\n"
        "Never write real keys into this file or commit them. Create the Secret on the cluster:\n"
        f"  kubectl{ns} create secret generic {secret_name(spec)} {literals}\n"
        "This file sits in its own folder so that 'kubectl apply -f DIR' never resets the keys on the cluster."
    )


# -- the monitor store ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorePlan:
    postgres: bool
    shown: str  # the store as README and notes show it (a URL without its password)


def store_secret_name(spec: DeploymentSpec) -> str:
    return f"{release_name(spec)}-monitor-store"


def plan_store(config: ProjectConfig, spec: DeploymentSpec) -> StorePlan:
    """Where the pods log requests; several replicas on a SQLite file are refused (exit 2)."""
    value = str(config.monitor.store or ".llmops/monitor.db")
    postgres = value.split(":", 1)[0].lower() in ("postgresql", "postgres")
    if not postgres and spec.replicas > 1:
        raise UsageError(
            f"deployment '{spec.env}' runs {spec.replicas} replicas, but monitor.store is the SQLite file "
            f"{value}: each pod would log to its own file, which disappears with the pod, and "
            "'llmops monitor' would see none of it.",
            hint="Point every pod at one database: set monitor.store: postgresql://USER@HOST/DB in llmops.yaml "
            f"(deploy renders a Secret {store_secret_name(spec)} for the full URL), or use replicas: 1.",
        )
    return StorePlan(postgres, _without_password(value) if postgres else value)


def apply_store(rendered: Rendered, spec: DeploymentSpec, package: PackageRef, plan: StorePlan) -> None:
    """Give every llmops server container the store URL from a Secret (PostgreSQL), or say where it logs."""
    if not plan.postgres:
        rendered.notes.append(
            f"each pod logs requests to its own SQLite file ({plan.shown} under /app), which goes with the pod: "
            "set monitor.store to a postgresql:// URL to keep them in one place, or scrape /metrics"
        )
        return
    name = store_secret_name(spec)
    for manifest in rendered.files:
        obj = manifest.obj or {}
        if obj.get("kind") != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            if container["name"] in SERVING_CONTAINERS:
                container.setdefault("env", []).append(_secret_env(STORE_ENV, name))
                container["command"] = _refuse_empty(STORE_ENV, name, container["command"])
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(spec, name, labels(spec, package, "monitor-store")),
        "type": "Opaque",
        "stringData": {STORE_ENV: ""},
    }
    ns = f" -n {spec.namespace}" if spec.namespace else ""
    comment = (
        f"Placeholder only: {STORE_ENV} is empty on purpose (a URL holds a password): every pod logs its\n"
        f"requests to this PostgreSQL URL and refuses to start while it is empty. Create it on the cluster:\n"
        f"  kubectl{ns} create secret generic {name} --from-literal={STORE_ENV}='{_with_placeholder(plan.shown)}'\n"
        "This file sits in its own folder so that 'kubectl apply -f DIR' never resets the URL on the cluster."
    )
    rendered.add(f"{SECRET_DIR}/monitor-store.yaml", secret, comment)
    rendered.notes.append(
        f"every pod logs requests to the PostgreSQL store {plan.shown} (URL from the Secret {name}); "
        "'llmops monitor' with the same monitor.store reads them all"
    )


def _refuse_empty(env: str, secret: str, command: list[str]) -> list[str]:
    """``command`` behind a shell check: an empty store URL would silently fall back to a pod-local file."""
    script = (
        f'if [ -z "${env}" ]; then echo "{env} is empty: create the Secret {secret} (see README.md)" >&2; '
        'exit 1; fi; exec "$@"'
    )
    return ["/bin/sh", "-c", script, "sh", *command]


def _secret_env(key: str, secret: str) -> dict[str, Any]:
    return {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    netloc = f"{user}@{host}" if user else host
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("password="))
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _with_placeholder(shown: str) -> str:
    """The URL to put in the Secret, with PASSWORD where the password goes."""
    parts = urlsplit(shown)
    if parts.username and "${" not in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return shown.replace(parts.netloc, f"{parts.username}:PASSWORD@{host}", 1)
    return shown
