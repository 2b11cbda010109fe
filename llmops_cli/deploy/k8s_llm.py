"""Target ``kubernetes`` with an LLM runtime: vLLM (a plain Deployment) or KServe (``LLMInferenceService``).

Both serve the package's one base model with its LoRA adapters through vLLM's OpenAI-compatible
API: requests name the base model or an adapter. Neither runs llmops chains (retrieval, prompt
templates); use ``runtime: llmops`` for those. In both, the llmops gateway (``llmops serve
--upstream``) stands in front, so requests are authenticated, limited, logged and counted like the
llmops runtime's (see :mod:`llmops_cli.deploy.gateway` for where it runs and why).

Weights that are inside the package (a quantized or local model, adapters) come from the package
image: for vLLM an init container copies them into a pod-local volume; for KServe, whose model URIs
name a storage location, a Job copies them once into a PersistentVolumeClaim the service reads
through ``pvc://`` URIs. A model shipped as the embedded GGUF is served from its original weights
on the Hugging Face Hub instead (``hf://``).

The ``LLMInferenceService`` shape follows KServe's API (``serving.kserve.io/v1alpha1``:
``spec.model.uri``/``name``, ``spec.model.lora.adapters[]``/``maxRank``, ``spec.replicas``,
``spec.router``, ``spec.template`` as a PodSpec whose ``main`` container is merged into KServe's
vLLM template) and its samples in ``docs/samples/llmisvc`` (probes on ``/health`` over HTTPS).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llmops_cli.deploy.gateway import gateway_container, keys_comment, keys_secret
from llmops_cli.deploy.k8s import (
    SECRET_DIR,
    Rendered,
    image_of,
    labels,
    metadata,
    pod_annotations,
    probe,
    resources,
    secret_name,
    selector,
    service,
    strategy,
)
from llmops_cli.deploy.spec import CONTAINER_PORT, release_name

VLLM_PORT = 8001  # vLLM's port inside the pod; the gateway has CONTAINER_PORT ("http")

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.deployments import DeploymentSpec
    from llmops_cli.deploy.package_ref import PackageRef, ServedAdapter, ServedModel

VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"  # pinned: edit the rendered manifest to move to another release
VLLM_KEY_ENV = "VLLM_API_KEY"  # vLLM's own variable for its single API key
MODELS_MOUNT = "/models"
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts
DEFAULT_LLM_MEMORY = "8Gi"  # host memory of a vLLM pod (weights live on the GPU)
KSERVE_API = "serving.kserve.io/v1alpha1"


def _max_rank(adapters: list[ServedAdapter]) -> int:
    top = max((a.rank for a in adapters), default=16)
    return next((r for r in LORA_RANKS if r >= top), top)


def _gpus(spec: DeploymentSpec, out: Rendered) -> int:
    """vLLM needs a GPU: one unless resources.gpu says otherwise (0 is kept, with a warning)."""
    if "gpu" not in spec.resources:
        out.notes.append("resources.gpu is not set: requesting 1 GPU (vLLM runs on GPUs)")
        return 1
    if spec.gpus == 0:
        out.notes.append(
            "resources.gpu is 0: the vllm/vllm-openai image needs a GPU; use a CPU build of vLLM or add one"
        )
    return spec.gpus


def _common_notes(package: PackageRef, model: ServedModel, out: Rendered) -> None:
    chain = (package.manifest.get("serves") or {}).get("chain")
    if chain:
        out.notes.append(
            f"vLLM serves the model and its adapters only: chain '{chain}' (retrieval, prompt templates) is not run; "
            "deploy with runtime: llmops to serve the chain"
        )
    if model.note:
        out.notes.append(model.note)


# -- vLLM -------------------------------------------------------------------------------------------


def render_vllm(config: ProjectConfig, spec: DeploymentSpec, package: PackageRef) -> Rendered:
    from llmops_cli.deploy.package_ref import llm_weights

    out = Rendered()
    model, adapters = llm_weights(config, package)
    _common_notes(package, model, out)
    gpus = _gpus(spec, out)
    name = release_name(spec)
    copied = [p for p in [model.path, *(a.path for a in adapters)] if p]
    source = f"{MODELS_MOUNT}/{model.path}" if model.path else str(model.hub_id)
    if model.path and model.file:
        source += f"/{model.file}"
    # 0.0.0.0 so the kubelet's probes reach it; it keeps its own key, which only the gateway holds.
    args = [source, "--host", "0.0.0.0", "--port", str(VLLM_PORT), "--served-model-name", model.name]
    if model.bits:
        args += ["--quantization", "bitsandbytes"]
    if adapters:
        args += ["--enable-lora", "--max-lora-rank", str(_max_rank(adapters)), "--max-loras", str(len(adapters))]
        args += ["--lora-modules", *(f"{a.name}={MODELS_MOUNT}/{a.path}" for a in adapters)]
    # vLLM treats an empty VLLM_API_KEY as "no authentication": refuse to start instead.
    guard = (
        f'if [ -z "${VLLM_KEY_ENV}" ]; then echo "{VLLM_KEY_ENV} is empty: create the Secret {secret_name(spec)} '
        f'(see README.md)" >&2; exit 1; fi; exec vllm serve "$@"'
    )
    env: list[dict[str, Any]] = [
        {"name": VLLM_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": secret_name(spec), "key": VLLM_KEY_ENV}}}
    ]
    if model.hub_id:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN", "optional": True}},
            }
        )
    mounts: list[dict[str, Any]] = [{"name": "shm", "mountPath": "/dev/shm"}]
    volumes: list[dict[str, Any]] = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}]
    init: list[dict[str, Any]] = []
    if copied:
        mounts.append({"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True})
        volumes.append({"name": "models", "emptyDir": {}})
        script = "set -e; " + " ".join(
            f'mkdir -p "{MODELS_MOUNT}/{p}"; cp -R "/app/{p}/." "{MODELS_MOUNT}/{p}/";' for p in copied
        )
        init.append({
            "name": "copy-weights",
            "image": image_of(spec, package),
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/sh", "-c", script],
            "volumeMounts": [{"name": "models", "mountPath": MODELS_MOUNT}],
        })  # fmt: skip
    container: dict[str, Any] = {
        "name": "vllm",
        "image": VLLM_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", guard, "vllm"],
        "args": args,
        "ports": [{"name": "vllm", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "env": env,
        # Loading (and downloading) a model takes minutes: the startup probe allows 15.
        "startupProbe": _on(probe("/health", period=10, failures=90, timeout=5), "vllm"),
        "readinessProbe": _on(probe("/health", period=10, failures=3, timeout=5), "vllm"),
        "livenessProbe": _on(probe("/health", period=30, failures=5, timeout=10), "vllm"),
        "resources": resources(spec, memory_default=DEFAULT_LLM_MEMORY, gpus=gpus),
        "volumeMounts": mounts,
    }
    upstream = f"http://127.0.0.1:{VLLM_PORT}"
    front = gateway_container(spec, package, upstream=upstream, key_env=VLLM_KEY_ENV)
    pod: dict[str, Any] = {"terminationGracePeriodSeconds": 60, "containers": [front, container], "volumes": volumes}
    if init:
        pod["initContainers"] = init
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(spec, name, labels(spec, package, "vllm")),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector(spec, package)},
            "strategy": strategy(gpus),
            "template": {
                "metadata": {"labels": labels(spec, package, "vllm"), "annotations": pod_annotations(spec, package)},
                "spec": pod,
            },
        },
    }
    out.add("deployment.yaml", deployment)
    out.add("service.yaml", service(spec, package, "vllm"))  # targets "http": the gateway
    keys = [spec.keys_env, VLLM_KEY_ENV]
    out.add(f"{SECRET_DIR}/api-keys.yaml", keys_secret(spec, package, keys), keys_comment(spec, keys))
    out.notes.append(
        "the llmops gateway (container 'gateway') answers on the Service and forwards to vLLM on "
        f"127.0.0.1:{VLLM_PORT}: "
        f"clients use the keys in {spec.keys_env}; {VLLM_KEY_ENV} stays between the gateway and vLLM"
    )
    out.where = {
        "namespace": spec.namespace or "default",
        "service": f"http://{name}:{spec.port}",
        "image": image_of(spec, package),
        "models": [model.name, *(a.name for a in adapters)],
    }
    return out


# -- KServe -------------------------------------------------------------------------------------------


def claim_name(spec: DeploymentSpec) -> str:
    return f"{release_name(spec)}-models"


def render_kserve(config: ProjectConfig, spec: DeploymentSpec, package: PackageRef) -> Rendered:
    from llmops_cli.deploy.package_ref import llm_weights

    out = Rendered()
    model, adapters = llm_weights(config, package)
    _common_notes(package, model, out)
    gpus = _gpus(spec, out)
    name, claim = release_name(spec), claim_name(spec)
    copied = [p for p in [model.path, *(a.path for a in adapters)] if p]
    model_spec: dict[str, Any] = {
        "uri": (f"pvc://{claim}/{model.path}" + (f"/{model.file}" if model.file else ""))
        if model.path
        else f"hf://{model.hub_id}",
        "name": model.name,
    }
    if adapters:
        model_spec["lora"] = {
            "maxRank": _max_rank(adapters),
            "adapters": [{"name": a.name, "uri": f"pvc://{claim}/{a.path}"} for a in adapters],
        }
    main: dict[str, Any] = {
        "name": "main",
        "resources": resources(spec, memory_default=DEFAULT_LLM_MEMORY, gpus=gpus),
        # KServe's vLLM template serves TLS on 8000; these match its samples.
        "livenessProbe": {**probe("/health", period=30, failures=5, delay=120, timeout=30),
                          "httpGet": {"path": "/health", "port": CONTAINER_PORT, "scheme": "HTTPS"}},
        "readinessProbe": {**probe("/health", period=10, failures=3, delay=30, timeout=5),
                           "httpGet": {"path": "/health", "port": CONTAINER_PORT, "scheme": "HTTPS"}},
    }  # fmt: skip
    if model.bits:
        main["env"] = [{"name": "VLLM_ADDITIONAL_ARGS", "value": "--quantization bitsandbytes"}]
    service_obj = {
        "apiVersion": KSERVE_API,
        "kind": "LLMInferenceService",
        "metadata": {
            **metadata(spec, name, labels(spec, package, "llm")),
            "annotations": pod_annotations(spec, package),
        },
        "spec": {
            "model": model_spec,
            "replicas": spec.replicas,
            # No router: KServe publishes no route of its own, so the llmops gateway below is the only way in.
            "template": {"containers": [main]},
        },
    }
    out.add("llminferenceservice.yaml", service_obj)
    if copied:
        size = sum(_weights_bytes(package, p) for p in copied)
        access = "ReadWriteOnce" if spec.replicas == 1 else "ReadWriteMany"
        out.add("storage/pvc.yaml", {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata(spec, claim, labels(spec, package, "models")),
            "spec": {"accessModes": [access], "resources": {"requests": {"storage": _gib(size * 1.5)}}},
        })  # fmt: skip
        out.add("storage/copy-weights-job.yaml", _copy_job(spec, package, claim, copied))
        out.notes.append(
            f"apply storage/ first: the Job copies the package's weights into the claim {claim} that the "
            "LLMInferenceService reads through pvc:// URIs"
        )
    _kserve_gateway(spec, package, out)
    out.where = {"namespace": spec.namespace or "default", "image": image_of(spec, package),
                 "service": f"http://{name}:{spec.port}",
                 "models": [model.name, *(a.name for a in adapters)]}  # fmt: skip
    return out


def workload_url(spec: DeploymentSpec) -> str:
    """KServe's in-cluster Service of the LLMInferenceService's vLLM pods (TLS on 8000)."""
    ns = spec.namespace or "default"
    return f"https://{release_name(spec)}-kserve-workload-svc.{ns}.svc.cluster.local:{CONTAINER_PORT}"


def _kserve_gateway(spec: DeploymentSpec, package: PackageRef, out: Rendered) -> None:
    """The gateway Deployment and the Service in front of it (KServe owns the vLLM pod, so not a sidecar)."""
    name = release_name(spec)
    container = gateway_container(spec, package, upstream=workload_url(spec), key_env=None, verify=False)
    pod_labels = {**labels(spec, package, "gateway")}
    match = {**selector(spec, package), "app.kubernetes.io/component": "gateway"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(spec, f"{name}-gateway", pod_labels),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": match},
            "strategy": strategy(0),
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations(spec, package)},
                "spec": {"terminationGracePeriodSeconds": 40, "containers": [container]},
            },
        },
    }
    front = service(spec, package, "gateway")
    front["spec"]["selector"] = match
    out.add("gateway/deployment.yaml", deployment)
    out.add("gateway/service.yaml", front)
    out.add(f"{SECRET_DIR}/api-keys.yaml", keys_secret(spec, package, [spec.keys_env]),
            keys_comment(spec, [spec.keys_env]))  # fmt: skip
    out.notes.append(
        f"the llmops gateway (Deployment {name}-gateway, Service {name}) is the way in: it checks the keys in "
        f"{spec.keys_env}, logs every request and forwards to KServe's workload Service {workload_url(spec)} "
        "(KServe's self-signed TLS, so without certificate check); the LLMInferenceService has no router, "
        "so KServe exposes no unauthenticated route"
    )


def _on(check: dict[str, Any], port: str) -> dict[str, Any]:
    return {**check, "httpGet": {**check["httpGet"], "port": port}}


def _copy_job(spec: DeploymentSpec, package: PackageRef, claim: str, paths: list[str]) -> dict[str, Any]:
    script = "set -e; " + " ".join(f'mkdir -p "/mnt/models/{p}"; cp -R "/app/{p}/." "/mnt/models/{p}/";' for p in paths)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        # Jobs are immutable: one per package version.
        "metadata": metadata(spec, f"{release_name(spec)}-weights-v{package.version}", labels(spec, package, "models")),
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": labels(spec, package, "models")},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "copy-weights",
                        "image": image_of(spec, package),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c", script],
                        "volumeMounts": [{"name": "models", "mountPath": "/mnt/models"}],
                    }],
                    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": claim}}],
                },
            },
        },
    }  # fmt: skip


def _weights_bytes(package: PackageRef, prefix: str) -> int:
    files = package.manifest.get("files") or []
    return sum(int(f.get("size") or 0) for f in files if str(f.get("path", "")).startswith(prefix + "/"))


def _gib(size: float) -> str:
    return f"{max(1, math.ceil(size / 2**30))}Gi"
