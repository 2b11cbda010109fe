"""Validation of rendered Kubernetes manifests: ``kubectl`` when it can, the API schema always.

``kubectl apply --dry-run=client -R -f DIR`` is the reference, but it needs a cluster to fetch the
OpenAPI schema from, and CI has neither kubectl nor a cluster. So every object is also checked
offline against the Kubernetes API models of the ``kubernetes`` Python client (37.x: pydantic
models with strict types, required fields and unknown keys forbidden) and by the rules the API
server would apply anyway: object and label names, quantities, selectors that match their pods,
probe ports that exist. Custom resources (KServe's ``LLMInferenceService``) get structural checks
and their pod template is checked as a PodSpec. Each problem names its file and key path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = _LABEL_VALUE
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip
_UNREACHABLE = (
    "failed to download openapi", "connection refused", "unable to connect to the server",
    "no configuration has been provided", "couldn't get current server api group list", "dial tcp",
    "the server could not find the requested resource", "i/o timeout", "no such host",
)  # fmt: skip
KSERVE_VERSIONS = ("serving.kserve.io/v1alpha1", "serving.kserve.io/v1alpha2")
_URI_SCHEMES = ("hf://", "s3://", "gs://", "pvc://", "oci://", "oci+native://", "http://", "https://")


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(document)'}: {self.message}"


@dataclass
class Validation:
    validator: str  # what checked: "kubectl + schema", "schema", "compose", "structure"
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"validator": self.validator, "ok": self.ok, "problems": [str(p) for p in self.problems],
                "notes": self.notes}  # fmt: skip


@dataclass
class _Doc:
    file: str
    index: int
    obj: dict[str, Any]

    @property
    def label(self) -> str:
        return self.file if self.index == 0 else f"{self.file}#{self.index + 1}"


def validate_manifests(folder: Path, *, validator: str = "auto") -> Validation:
    """Validate every ``.yaml``/``.yml``/``.json`` under ``folder``; ``validator``: auto, kubectl, schema."""
    docs, problems = load_documents(folder)
    result = Validation("schema", problems)
    models = _models_module()
    if models is None:
        result.validator = "structure"
        result.notes.append("the 'kubernetes' Python package is not installed: only structural checks ran "
                            "(pip install 'kubernetes>=37' for full API schema validation)")  # fmt: skip
    for doc in docs:
        result.problems += check_object(doc, models)
    result.problems += _cross_checks(docs)
    if validator in ("auto", "kubectl") and docs:
        _kubectl(folder, result, required=validator == "kubectl")
    return result


def load_documents(folder: Path) -> tuple[list[_Doc], list[Problem]]:
    import yaml

    docs, problems = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()):
        rel = path.relative_to(folder).as_posix()
        try:
            loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as error:
            problems.append(Problem(rel, "", f"not valid YAML: {error}"))
            continue
        for index, obj in enumerate(o for o in loaded if o is not None):
            if not isinstance(obj, dict):
                problems.append(Problem(rel, "", "a Kubernetes object must be a mapping"))
                continue
            docs.append(_Doc(rel, index, obj))
    return docs, problems


def _models_module() -> Any:
    import importlib.util

    if importlib.util.find_spec("kubernetes") is None:
        return None
    import kubernetes.client.models as models

    return models


def _model_class(models: Any, api_version: str, kind: str) -> Any:
    version = api_version.rsplit("/", 1)[-1]
    cls = getattr(models, f"{version[:1].upper()}{version[1:]}{kind}", None)
    return cls if cls is not None and hasattr(cls, "model_validate") else None


def _loc(parts: tuple[Any, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_errors(doc: _Doc, cls: Any, data: Any, prefix: str) -> list[Problem]:
    import pydantic

    try:
        cls.model_validate(data)
    except pydantic.ValidationError as error:
        out = []
        for item in error.errors():
            where = _loc(tuple(item.get("loc", ())))
            where = f"{prefix}.{where}" if prefix and where else (prefix or where)
            got = item.get("input")
            shown = (
                f" (got {got!r})"
                if item.get("type") not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list))
                else ""
            )
            message = "unknown field" if item.get("type") == "extra_forbidden" else f"{item.get('msg')}{shown}"
            out.append(Problem(doc.label, where, message))
        return out
    return []


def check_object(doc: _Doc, models: Any) -> list[Problem]:
    """One object: the API schema (when known) and the server-side rules llmops' kinds rely on."""
    obj, problems = doc.obj, []
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        problems.append(Problem(doc.label, "apiVersion", "required"))
    if not isinstance(kind, str) or not kind:
        problems.append(Problem(doc.label, "kind", "required"))
    if problems:
        return problems
    assert isinstance(api_version, str) and isinstance(kind, str)
    body = {k: v for k, v in obj.items() if k != "status"}
    if api_version in KSERVE_VERSIONS and kind == "LLMInferenceService":
        problems += _check_llmisvc(doc, models)
    elif models is not None:
        cls = _model_class(models, api_version, kind)
        if cls is None:
            problems.append(Problem(doc.label, "kind", f"unknown kind {kind} in {api_version} (no schema to check it)"))
        else:
            problems += _schema_errors(doc, cls, body, "")
    problems += _check_metadata(doc, kind)
    raw_spec = obj.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        if models is None:
            problems += _basic_types(doc, spec)
        problems += _check_workload(doc, kind, spec)
    if kind == "Service":
        for i, port in enumerate(spec.get("ports") or []):
            if isinstance(port, dict) and isinstance(port.get("port"), int) and not 1 <= port["port"] <= 65535:
                problems.append(
                    Problem(doc.label, f"spec.ports[{i}].port", f"{port['port']} is not a TCP port (1-65535)")
                )
    return problems


def _check_metadata(doc: _Doc, kind: str) -> list[Problem]:
    meta = doc.obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return [Problem(doc.label, "metadata.name", "required")]
    out = []
    name = str(meta["name"])
    pattern, what = (_DNS_1035, "an RFC 1035 label") if kind == "Service" else (_DNS_SUBDOMAIN, "an RFC 1123 subdomain")
    if len(name) > (63 if kind == "Service" else 253) or not pattern.match(name):
        out.append(Problem(doc.label, "metadata.name", f"{name!r} is not {what} (lowercase letters, digits, '-')"))
    namespace = meta.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or not _DNS_LABEL.match(namespace) or len(namespace) > 63
    ):
        out.append(Problem(doc.label, "metadata.namespace", f"{namespace!r} is not an RFC 1123 label"))
    out += _check_labels(doc, "metadata.labels", meta.get("labels"))
    return out


def _check_labels(doc: _Doc, where: str, value: Any) -> list[Problem]:
    if not isinstance(value, dict):
        return []
    out = []
    for key, text in value.items():
        prefix, _, name = str(key).rpartition("/")
        if (prefix and not _DNS_SUBDOMAIN.match(prefix)) or not name or len(name) > 63 or not _LABEL_NAME.match(name):
            out.append(Problem(doc.label, f"{where}.{key}", "invalid label key"))
        if not isinstance(text, str) or len(text) > 63 or not _LABEL_VALUE.match(text):
            out.append(Problem(doc.label, f"{where}.{key}", f"invalid label value {text!r} (a string of at most 63 "
                                                              "letters, digits, '-', '_', '.')"))  # fmt: skip
    return out


def _basic_types(doc: _Doc, spec: dict[str, Any]) -> list[Problem]:
    """Without the API models: the types of the fields a workload most often gets wrong."""
    out = []
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)):
        out.append(Problem(doc.label, "spec.replicas", f"must be an integer (got {replicas!r})"))
    pod = (spec.get("template") or {}).get("spec") if isinstance(spec.get("template"), dict) else None
    containers = pod.get("containers") if isinstance(pod, dict) else None
    if not isinstance(containers, list) or not containers:
        return [*out, Problem(doc.label, "spec.template.spec.containers", "required: a list of at least one container")]
    for i, container in enumerate(containers):
        at = f"spec.template.spec.containers[{i}]"
        if not isinstance(container, dict) or not isinstance(container.get("name"), str):
            out.append(Problem(doc.label, f"{at}.name", "required (a string)"))
            continue
        for j, port in enumerate(container.get("ports") or []):
            number = port.get("containerPort") if isinstance(port, dict) else None
            if not isinstance(number, int) or isinstance(number, bool):
                out.append(Problem(doc.label, f"{at}.ports[{j}].containerPort", f"must be an integer (got {number!r})"))
    return out


def _check_workload(doc: _Doc, kind: str, spec: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    raw_template = spec.get("template")
    template: dict[str, Any] = raw_template if isinstance(raw_template, dict) else {}
    pod_labels = (template.get("metadata") or {}).get("labels") or {}
    out += _check_labels(doc, "spec.template.metadata.labels", pod_labels)
    match = ((spec.get("selector") or {}).get("matchLabels") or {}) if kind != "Job" else {}
    for key, value in match.items() if isinstance(match, dict) else []:
        if not isinstance(pod_labels, dict) or pod_labels.get(key) != value:
            why = "the pod template has no such label: the selector would not match its own pods"
            out.append(Problem(doc.label, f"spec.selector.matchLabels.{key}", why))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas < 0:
        out.append(Problem(doc.label, "spec.replicas", "must not be negative"))
    pod = template.get("spec")
    if isinstance(pod, dict):
        out += check_pod(doc, "spec.template.spec", pod)
    return out


def check_pod(doc: _Doc, where: str, pod: dict[str, Any], *, need_image: bool = True) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(pod.get(group) or []):
            if not isinstance(container, dict):
                continue
            at = f"{where}.{group}[{i}]"
            name = container.get("name")
            if isinstance(name, str):
                if not _DNS_LABEL.match(name) or len(name) > 63:
                    out.append(Problem(doc.label, f"{at}.name", f"{name!r} is not an RFC 1123 label"))
                if name in seen:
                    out.append(Problem(doc.label, f"{at}.name", f"duplicate container name {name!r}"))
                seen.add(name)
            if need_image and not container.get("image"):
                out.append(Problem(doc.label, f"{at}.image", "required"))
            out += _check_container(doc, at, container)
    volumes = {v.get("name") for v in pod.get("volumes") or [] if isinstance(v, dict)}
    for group in ("initContainers", "containers"):
        for i, container in enumerate(pod.get(group) or []):
            for j, mount in enumerate(container.get("volumeMounts") or [] if isinstance(container, dict) else []):
                if isinstance(mount, dict) and mount.get("name") not in volumes:
                    out.append(Problem(doc.label, f"{where}.{group}[{i}].volumeMounts[{j}].name",
                                       f"no volume named {mount.get('name')!r} in the pod"))  # fmt: skip
    return out


def _check_container(doc: _Doc, at: str, container: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    names = set()
    for j, port in enumerate(container.get("ports") or []):
        if not isinstance(port, dict):
            continue
        number = port.get("containerPort")
        if isinstance(number, int) and not 1 <= number <= 65535:
            out.append(Problem(doc.label, f"{at}.ports[{j}].containerPort", f"{number} is not a TCP port (1-65535)"))
        if port.get("name"):
            names.add(port["name"])
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = (container.get(probe_name) or {}).get("httpGet") if isinstance(container.get(probe_name), dict) else None
        if isinstance(http, dict) and isinstance(http.get("port"), str) and http["port"] not in names:
            out.append(
                Problem(doc.label, f"{at}.{probe_name}.httpGet.port", f"no container port named {http['port']!r}")
            )
    res = container.get("resources")
    if isinstance(res, dict):
        out += _check_resources(doc, f"{at}.resources", res)
    return out


def parse_quantity(text: str) -> float | None:
    match = _QUANTITY.match(text.strip())
    if not match:
        return None
    number, suffix = match.groups()
    try:
        value = float(number)
    except ValueError:
        return None
    if suffix in _SUFFIX:
        return value * _SUFFIX[suffix]
    if suffix[:1] in "eE":
        try:
            return value * 10 ** int(suffix[1:])
        except ValueError:
            return None
    return None


def _check_resources(doc: _Doc, at: str, res: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    parsed: dict[str, dict[str, float]] = {}
    for group in ("requests", "limits"):
        values = res.get(group) or {}
        if not isinstance(values, dict):
            continue
        for key, raw in values.items():
            value = (
                parse_quantity(str(raw)) if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else None
            )
            if value is None:
                out.append(
                    Problem(doc.label, f"{at}.{group}.{key}", f"{raw!r} is not a Kubernetes quantity (e.g. 500m, 4Gi)")
                )
                continue
            if "/" in str(key) and not float(value).is_integer():
                out.append(Problem(doc.label, f"{at}.{group}.{key}", "extended resources (GPUs) take whole numbers"))
            parsed.setdefault(group, {})[str(key)] = value
    for key, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(key)
        if limit is not None and request > limit:
            out.append(Problem(doc.label, f"{at}.requests.{key}", "the request is above the limit"))
        if "/" in key and limit is not None and request != limit:
            out.append(
                Problem(doc.label, f"{at}.requests.{key}", "an extended resource's request must equal its limit")
            )
    return out


def _check_llmisvc(doc: _Doc, models: Any) -> list[Problem]:
    """KServe's LLMInferenceService: no published schema here, so the fields llmops writes are checked."""
    spec = doc.obj.get("spec")
    if not isinstance(spec, dict):
        return [Problem(doc.label, "spec", "required (a mapping)")]
    out: list[Problem] = []
    model = spec.get("model")
    if not isinstance(model, dict):
        return [Problem(doc.label, "spec.model", "required (a mapping with uri)")]
    out += _uri(doc, "spec.model.uri", model.get("uri"))
    lora = model.get("lora")
    if lora is not None:
        if not isinstance(lora, dict):
            out.append(Problem(doc.label, "spec.model.lora", "must be a mapping"))
        else:
            names: set[str] = set()
            for i, adapter in enumerate(lora.get("adapters") or []):
                at = f"spec.model.lora.adapters[{i}]"
                if not isinstance(adapter, dict) or not isinstance(adapter.get("name"), str) or not adapter.get("name"):
                    out.append(Problem(doc.label, f"{at}.name", "required"))
                    continue
                if adapter["name"] in names or adapter["name"] == model.get("name"):
                    out.append(
                        Problem(doc.label, f"{at}.name", "adapter names must be unique and differ from the model name")
                    )
                names.add(adapter["name"])
                out += _uri(doc, f"{at}.uri", adapter.get("uri"))
            for key in ("maxRank", "maxAdapters", "maxCpuAdapters"):
                if key in lora and (not isinstance(lora[key], int) or isinstance(lora[key], bool) or lora[key] < 1):
                    out.append(Problem(doc.label, f"spec.model.lora.{key}", "must be an integer >= 1"))
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0):
        out.append(Problem(doc.label, "spec.replicas", f"must be an integer >= 0 (got {replicas!r})"))
    router = spec.get("router")
    if router is not None:
        if not isinstance(router, dict):
            out.append(Problem(doc.label, "spec.router", "must be a mapping"))
        else:
            for key in router:
                if key not in ("route", "gateway", "ingress", "scheduler"):
                    out.append(Problem(doc.label, f"spec.router.{key}", "unknown field"))
    template = spec.get("template")
    if template is not None:
        if not isinstance(template, dict):
            out.append(Problem(doc.label, "spec.template", "must be a PodSpec mapping"))
        else:
            cls = _model_class(models, "v1", "PodSpec") if models is not None else None
            if cls is not None:
                out += _schema_errors(doc, cls, template, "spec.template")
            out += check_pod(doc, "spec.template", template, need_image=False)  # KServe's template supplies it
    return out


def _uri(doc: _Doc, where: str, value: Any) -> list[Problem]:
    if not isinstance(value, str) or not value:
        return [Problem(doc.label, where, "required (a storage URI such as hf://org/model or pvc://claim/path)")]
    if not value.startswith(_URI_SCHEMES):
        return [Problem(doc.label, where, f"{value!r} has no supported scheme ({', '.join(_URI_SCHEMES)})")]
    return []


def _cross_checks(docs: list[_Doc]) -> list[Problem]:
    """Every Service selects pods of a workload in the set, on a port those pods name."""
    out: list[Problem] = []
    pods = []
    for doc in docs:
        if doc.obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            template = (doc.obj.get("spec") or {}).get("template") or {}
            ns = (doc.obj.get("metadata") or {}).get("namespace")
            ports = {p.get("name") for c in (template.get("spec") or {}).get("containers") or [] if isinstance(c, dict)
                     for p in c.get("ports") or [] if isinstance(p, dict)}  # fmt: skip
            pods.append((ns, (template.get("metadata") or {}).get("labels") or {}, ports))
    for doc in docs:
        if doc.obj.get("kind") != "Service":
            continue
        spec = doc.obj.get("spec") or {}
        chosen = spec.get("selector") or {}
        ns = (doc.obj.get("metadata") or {}).get("namespace")
        matches = [p for p in pods if p[0] == ns and all(p[1].get(k) == v for k, v in chosen.items())]
        if chosen and pods and not matches:
            out.append(Problem(doc.label, "spec.selector", "selects no pods of the workloads rendered beside it"))
        for i, port in enumerate(spec.get("ports") or []):
            target = port.get("targetPort") if isinstance(port, dict) else None
            if isinstance(target, str) and matches and not any(target in p[2] for p in matches):
                out.append(
                    Problem(
                        doc.label, f"spec.ports[{i}].targetPort", f"the selected pods have no port named {target!r}"
                    )
                )
    return out


def _kubectl(folder: Path, result: Validation, *, required: bool) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if required:
            result.notes.append("kubectl is not on PATH: validated against the API schema only")
        return
    try:
        proc = subprocess.run(
            [kubectl, "apply", "--dry-run=client", "--request-timeout=15s", "-R", "-f", str(folder), "-o", "name"],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        result.notes.append(f"kubectl could not run ({error}): validated against the API schema only")
        return
    if proc.returncode == 0:
        result.validator = "kubectl + schema"
        return
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    lowered = proc.stderr.lower()
    if any(marker in lowered for marker in _UNREACHABLE):
        result.notes.append("kubectl could not reach a cluster for its API schema: validated offline instead")
        return
    real = [line for line in lines if "no matches for kind" not in line and "ensure crds are installed" not in line]
    if len(real) < len(lines):
        result.notes.append("kubectl does not know a custom resource kind (its CRD is not installed on the cluster); "
                            "it was checked structurally")  # fmt: skip
    result.validator = "kubectl + schema"
    for line in real:
        match = re.search(r'error validating "([^"]+)": (.*)', line)
        if match:
            rel = Path(match[1]).resolve()
            file = rel.relative_to(folder.resolve()).as_posix() if rel.is_relative_to(folder.resolve()) else match[1]
            result.problems.append(Problem(file, "", f"kubectl: {match[2]}"))
        else:
            result.problems.append(Problem(".", "", f"kubectl: {line}"))
