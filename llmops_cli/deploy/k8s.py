"""Target ``kubernetes``, runtime ``llmops``: Deployment + Service + Secret running the package image.

Shared pieces for every runtime live here too: labels, resources (with ``nvidia.com/gpu``), the
Service and the API-key Secret. The image is ``deployments.ENV.image`` or, by default,
``PACKAGE:vN`` built from the package's own Dockerfile (the generated README says how).

The Secret holds an *empty* placeholder, never a key, and sits in its own ``secret/`` folder:
``kubectl apply -f DIR`` (not recursive) then never overwrites keys filled in on the cluster, and a
forgotten Secret fails closed, because the server refuses to start when the key variable is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.deploy.spec import CONTAINER_PORT, dns_label, release_name

if TYPE_CHECKING:
    from llmops_cli.config.deployments import DeploymentSpec
    from llmops_cli.deploy.package_ref import PackageRef

GPU_RESOURCE = "nvidia.com/gpu"
SECRET_DIR = "secret"
GRACE_PERIOD_S = 40  # the server drains open streams for 30 s after SIGTERM


@dataclass
class Manifest:
    """One file of rendered output: a Kubernetes object (``obj``) or plain text (``text``)."""

    path: str  # relative to the output folder
    obj: dict[str, Any] | None = None
    text: str | None = None
    comment: str = ""


@dataclass
class Rendered:
    files: list[Manifest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    where: dict[str, Any] = field(default_factory=dict)

    def add(self, path: str, obj: dict[str, Any], comment: str = "") -> None:
        self.files.append(Manifest(path, obj=obj, comment=comment))


def default_image(package: PackageRef) -> str:
    return f"{dns_label(package.name)}:v{package.version}"


def image_of(spec: DeploymentSpec, package: PackageRef) -> str:
    return spec.image or default_image(package)


def labels(spec: DeploymentSpec, package: PackageRef, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": dns_label(package.name),
        "app.kubernetes.io/instance": release_name(spec),
        "app.kubernetes.io/version": f"v{package.version}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "llmops",
    }


def selector(spec: DeploymentSpec, package: PackageRef) -> dict[str, str]:
    """The labels a Deployment selects on: never the version (a selector cannot change)."""
    return {"app.kubernetes.io/name": dns_label(package.name), "app.kubernetes.io/instance": release_name(spec)}


def metadata(spec: DeploymentSpec, name: str, object_labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    meta["labels"] = dict(object_labels)
    return meta


def pod_annotations(spec: DeploymentSpec, package: PackageRef) -> dict[str, str]:
    """Recorded on the pod template, so a new package version rolls the pods."""
    return {
        "llmops.dev/deployment": spec.env,
        "llmops.dev/package": package.ref,
        "llmops.dev/package-sha256": package.sha256,
    }


def cpu_quantity(value: Any) -> str:
    if isinstance(value, str):
        return value
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{math.ceil(number * 1000)}m"


def memory_quantity(size: int) -> str:
    """Bytes as Mi, rounded up to a multiple of 64 Mi."""
    mib = max(64, math.ceil(size / 2**20 / 64) * 64)
    return f"{mib}Mi"


def resources(spec: DeploymentSpec, *, memory_default: str | None, gpus: int) -> dict[str, Any]:
    """Requests and limits: memory limit = request (no overcommit surprise), GPUs as a limit."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.resources.get("cpu") is not None:
        requests["cpu"] = cpu_quantity(spec.resources["cpu"])
    memory = spec.resources.get("memory") or memory_default
    if memory:
        requests["memory"] = limits["memory"] = str(memory)
    if gpus > 0:
        limits[GPU_RESOURCE] = str(gpus)  # extended resources: the request defaults to the limit
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def service(spec: DeploymentSpec, package: PackageRef, component: str) -> dict[str, Any]:
    name = release_name(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(spec, name, labels(spec, package, component)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(spec, package),
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def secret_name(spec: DeploymentSpec) -> str:
    return f"{release_name(spec)}-api-keys"


def api_key_secret(spec: DeploymentSpec, package: PackageRef, key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(spec, secret_name(spec), labels(spec, package, "api-keys")),
        "type": "Opaque",
        "stringData": {key: ""},
    }


def secret_comment(spec: DeploymentSpec, key: str, *, several: bool) -> str:
    ns = f" -n {spec.namespace}" if spec.namespace else ""
    what = "comma-separated API keys" if several else "the API key"
    keys = "KEY1,KEY2" if several else "KEY"
    return (
        f"Placeholder only: {key} is empty on purpose, and the server refuses to start until it holds\n"
        f"{what}. Never write real keys into this file or commit them. Create the Secret on the cluster:\n"
        f"  kubectl{ns} create secret generic {secret_name(spec)} --from-literal={key}={keys}\n"
        "(to replace the keys later, append: --dry-run=client -o yaml | kubectl apply -f -). This file sits in\n"
        "its own folder so that 'kubectl apply -f DIR' never resets the keys on the cluster."
    )


def probe(path: str, *, period: int, failures: int, delay: int = 0, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def strategy(gpus: int) -> dict[str, Any]:
    """Zero-downtime rollouts; with GPUs, replace pods one by one instead (a surge pod needs a spare GPU)."""
    rolling = {"maxSurge": 0, "maxUnavailable": 1} if gpus > 0 else {"maxSurge": 1, "maxUnavailable": 0}
    return {"type": "RollingUpdate", "rollingUpdate": rolling}


# -- runtime llmops -------------------------------------------------------------------------------------


def render_llmops(spec: DeploymentSpec, package: PackageRef) -> Rendered:
    from llmops_cli.deploy.gateway import serve_device, serve_flags

    out = Rendered()
    name, key = release_name(spec), spec.keys_env
    serve = ["llmops", "-C", "/app", "serve", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
    serve += serve_flags(spec)
    device = serve_device(spec)  # cuda when GPUs are requested, unless serve.device says otherwise
    if device:
        serve += ["--device", device]
    container: dict[str, Any] = {
        "name": "server",
        "image": image_of(spec, package),
        "imagePullPolicy": "IfNotPresent",
        "command": serve,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name(spec), "key": key}}}],
        # /health answers while the model loads; /ready only once it is in memory.
        "readinessProbe": probe("/ready", period=5, failures=3, delay=5),
        "livenessProbe": probe("/health", period=20, failures=3, delay=10),
    }
    memory_default = memory_quantity(package.memory_bytes) if package.memory_bytes else None
    container_resources = resources(spec, memory_default=memory_default, gpus=spec.gpus)
    if container_resources:
        container["resources"] = container_resources
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(spec, name, labels(spec, package, "server")),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector(spec, package)},
            "strategy": strategy(spec.gpus),
            "template": {
                "metadata": {"labels": labels(spec, package, "server"), "annotations": pod_annotations(spec, package)},
                "spec": {"terminationGracePeriodSeconds": GRACE_PERIOD_S, "containers": [container]},
            },
        },
    }
    out.add("deployment.yaml", deployment)
    out.add("service.yaml", service(spec, package, "server"))
    out.add(f"{SECRET_DIR}/api-keys.yaml", api_key_secret(spec, package, key), secret_comment(spec, key, several=True))
    if spec.gpus and device and not device.startswith("cuda"):
        out.notes.append(f"serve.device is {device}: the {spec.gpus} GPU(s) requested are reserved but unused")
    if not package.memory_bytes and not spec.resources.get("memory"):
        out.notes.append("no memory request: the package has no memory estimate and resources.memory is unset")
    out.where = {
        "namespace": spec.namespace or "default",
        "service": f"http://{name}:{spec.port}",
        "image": container["image"],
    }
    return out
