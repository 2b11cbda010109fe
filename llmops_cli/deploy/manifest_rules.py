"""The rules the Kubernetes API server applies beyond its schema, checked offline on rendered objects.

Object and label names, workloads whose selectors match their own pods, containers (names, ports,
probes naming a port that exists, volume mounts), resource quantities, and Services that select the
pods rendered beside them. :mod:`llmops_cli.deploy.manifest_check` runs them with the schema check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = _LABEL_VALUE
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """One finding: the file, the key path inside the object (empty: the whole document), what is wrong."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(document)'}: {self.message}"


@dataclass
class Doc:
    """One object of a rendered file (a file may hold several, separated by ``---``)."""

    file: str
    index: int
    obj: dict[str, Any]

    @property
    def label(self) -> str:
        return self.file if self.index == 0 else f"{self.file}#{self.index + 1}"


def check_metadata(doc: Doc, kind: str) -> list[Problem]:
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
    out += check_labels(doc, "metadata.labels", meta.get("labels"))
    return out


def check_labels(doc: Doc, where: str, value: Any) -> list[Problem]:
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


def basic_types(doc: Doc, spec: dict[str, Any]) -> list[Problem]:
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


def check_workload(doc: Doc, kind: str, spec: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    raw_template = spec.get("template")
    template: dict[str, Any] = raw_template if isinstance(raw_template, dict) else {}
    pod_labels = (template.get("metadata") or {}).get("labels") or {}
    out += check_labels(doc, "spec.template.metadata.labels", pod_labels)
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


def check_pod(doc: Doc, where: str, pod: dict[str, Any], *, need_image: bool = True) -> list[Problem]:
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


def _check_container(doc: Doc, at: str, container: dict[str, Any]) -> list[Problem]:
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


def _check_resources(doc: Doc, at: str, res: dict[str, Any]) -> list[Problem]:
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


def cross_checks(docs: list[Doc]) -> list[Problem]:
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
