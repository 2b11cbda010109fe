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

from llmops_cli.deploy.manifest_rules import (
    Doc,
    Problem,
    basic_types,
    check_metadata,
    check_pod,
    check_workload,
    cross_checks,
)

_UNREACHABLE = (
    "failed to download openapi", "connection refused", "unable to connect to the server",
    "no configuration has been provided", "couldn't get current server api group list", "dial tcp",
    "the server could not find the requested resource", "i/o timeout", "no such host",
)  # fmt: skip
KSERVE_VERSIONS = ("serving.kserve.io/v1alpha1", "serving.kserve.io/v1alpha2")
_URI_SCHEMES = ("hf://", "s3://", "gs://", "pvc://", "oci://", "oci+native://", "http://", "https://")


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
    result.problems += cross_checks(docs)
    if validator in ("auto", "kubectl") and docs:
        _kubectl(folder, result, required=validator == "kubectl")
    return result


def load_documents(folder: Path) -> tuple[list[Doc], list[Problem]]:
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
            docs.append(Doc(rel, index, obj))
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


def _schema_errors(doc: Doc, cls: Any, data: Any, prefix: str) -> list[Problem]:
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


def check_object(doc: Doc, models: Any) -> list[Problem]:
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
    problems += check_metadata(doc, kind)
    raw_spec = obj.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        if models is None:
            problems += basic_types(doc, spec)
        problems += check_workload(doc, kind, spec)
    if kind == "Service":
        for i, port in enumerate(spec.get("ports") or []):
            if isinstance(port, dict) and isinstance(port.get("port"), int) and not 1 <= port["port"] <= 65535:
                problems.append(
                    Problem(doc.label, f"spec.ports[{i}].port", f"{port['port']} is not a TCP port (1-65535)")
                )
    return problems


def _check_llmisvc(doc: Doc, models: Any) -> list[Problem]:
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


def _uri(doc: Doc, where: str, value: Any) -> list[Problem]:
    if not isinstance(value, str) or not value:
        return [Problem(doc.label, where, "required (a storage URI such as hf://org/model or pvc://claim/path)")]
    if not value.startswith(_URI_SCHEMES):
        return [Problem(doc.label, where, f"{value!r} has no supported scheme ({', '.join(_URI_SCHEMES)})")]
    return []


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
