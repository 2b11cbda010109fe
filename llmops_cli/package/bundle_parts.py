"""What a package ships beside its models, adapters and prompts: retriever indexes and their
documents, embedding models, the monitor's reference data, the code of ``call`` steps, and files
matched by ``include:``. Each function adds files to the plan and returns its piece of the
bundle's llmops.yaml where it has one.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.config.chains import CallStep, RetrieveStep
from llmops_cli.errors import UsageError
from llmops_cli.package.archive import Entry
from llmops_cli.package.indexes import export_index
from llmops_cli.package.plan import EMBEDDED_PIP, PLACEHOLDER_DIR, PackagePlan, RetrieverInfo
from llmops_cli.package.sources import Component, folder_files, registered
from llmops_cli.versioning.artifacts import MANIFEST

if TYPE_CHECKING:
    from llmops_cli.config.packages import PackageSpec
    from llmops_cli.versioning import ArtifactRegistry


def retrievers_of(
    plan: PackagePlan,
    raw_doc: dict[str, Any],
    registry: ArtifactRegistry,
    pkg: PackageSpec,
    datasets: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Ship the retrievers the chain uses (and ``pkg.retrievers``): index, documents, embedding model."""
    from llmops_cli.retrieval import retriever_spec
    from llmops_cli.retrieval.embeddings import resolve_embedding

    steps = plan.chain_spec.steps if plan.chain_spec else ()
    names = [s.retrieve for s in steps if isinstance(s, RetrieveStep)] + list(pkg.retrievers)
    entries: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(names):
        spec = retriever_spec(plan.config, name)
        if not registry.folder("index", name).joinpath(MANIFEST).is_file():
            raise UsageError(f"Retriever '{name}' has no registered index yet.", hint=f"Run 'llmops index {name}'.")
        art = registered(registry, "index", name, hint=f"Run 'llmops index {name}'.")
        index_json = json.loads(art.files["index.json"].read_text(encoding="utf-8"))
        prefix = f"artifacts/index/{name}"
        exported = export_index(plan.config, name, index_json, prefix, registered_hash=art.hash)
        registered_entries, expected = art.entries(prefix)
        for entry in registered_entries + exported.entries:
            plan.add(entry, expected.get(entry.path))
        plan.git_paths.append(art.folder)
        plan.components.append(art.component(prefix, chunks=exported.chunks, documents=exported.documents))
        _documents(plan, raw_doc, spec.dataset.name, index_json, datasets)
        entry = copy.deepcopy(raw_doc["retrievers"][name])
        store = entry.pop("store", None) or {}
        if store.get("collection"):
            entry["store"] = {"collection": store["collection"]}  # the bundle's own local store
        entry["embedding"] = _embedding(plan, raw_doc, registry, spec.embedding, resolve_embedding)
        entries[name] = entry
        plan.retrievers.append(RetrieverInfo(name, spec.embedding, exported.documents, exported.chunks, art))
    return entries


def _documents(
    plan: PackagePlan, raw_doc: dict[str, Any], dataset: str, index_json: dict[str, Any], datasets: dict[str, Any]
) -> None:
    raw = copy.deepcopy(raw_doc["datasets"][dataset])
    _inside_project(plan, str(raw["path"]), f"dataset '{dataset}'")
    sources = sorted({str(d["source"]) for d in index_json.get("documents", [])})
    for source in sources:
        plan.add_file(source)
    blob = "\n".join(f"{s}\t{hashlib.sha256((plan.root / s).read_bytes()).hexdigest()}" for s in sources)
    digest = "sha256:" + hashlib.sha256(blob.encode()).hexdigest()
    plan.components.append(Component("dataset", dataset, str(raw["path"]), digest, path=str(raw["path"])))
    datasets[dataset] = raw


def _embedding(plan: PackagePlan, raw_doc: dict[str, Any], registry: Any, value: str, resolve_embedding: Any) -> str:
    """The retriever's ``embedding:`` in the bundle: a pip-installed default, a shipped model, or a folder."""
    from llmops_cli.models.resolver import safe_name

    model = resolve_embedding(plan.config, value)
    runtime = sum(p.stat().st_size for rel, p in folder_files(model.folder) if rel.endswith((".safetensors", ".bin")))
    plan.embeddings[value] = runtime
    if value in EMBEDDED_PIP:
        from llmops_cli.versioning.installed import version

        pip = EMBEDDED_PIP[value]
        ref = f"pip:{pip}=={version(pip)}"
        if not any(c.kind == "embedding" and c.name == value for c in plan.components):
            plan.components.append(Component("embedding", value, ref, model.model_fingerprint))
        return value
    if value in plan.config.models:
        plan.ship(raw_doc, registry, value)
        return value
    prefix = f"model/{safe_name(value)}"
    if not any(e.startswith(prefix + "/") for e in plan.entries):
        for rel, path in folder_files(model.folder):
            plan.add(Entry(f"{prefix}/{rel}", source=path))
        plan.components.append(Component("embedding", value, value, model.model_fingerprint, path=prefix))
    return prefix


def monitor_of(
    plan: PackagePlan, raw_doc: dict[str, Any], datasets: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """``monitor:`` for the bundle (no continuous_eval: evals are not shipped), with its reference data."""
    monitor = copy.deepcopy(raw_doc.get("monitor"))
    if not isinstance(monitor, dict):
        return None
    monitor.pop("continuous_eval", None)
    reference = monitor.get("reference")
    if reference and (reference not in datasets or str(datasets[reference]["path"]).startswith(PLACEHOLDER_DIR)):
        raw = copy.deepcopy(raw_doc["datasets"][reference])
        path = _inside_project(plan, str(raw["path"]), f"dataset '{reference}'")
        files = [path] if path.is_file() else [p for _, p in folder_files(path)]
        for file in files:
            plan.add_file(file.relative_to(plan.root).as_posix())
        datasets[reference] = raw
    return monitor


def _inside_project(plan: PackagePlan, rel: str, what: str) -> Path:
    path = (plan.root / rel).resolve()
    if not path.is_relative_to(plan.root):
        raise UsageError(f"package '{plan.name}': {what} lives outside the project ({rel}), so it cannot be packaged")
    return path


def ship_code(plan: PackagePlan) -> None:
    """The project modules ``call`` steps import (the bundle still needs --allow-code to run them)."""
    for step in plan.chain_spec.steps if plan.chain_spec else ():
        if not isinstance(step, CallStep):
            continue
        module = step.call.partition(":")[0]
        parts = module.split(".")
        base = plan.root.joinpath(*parts)
        if base.with_suffix(".py").is_file():
            files = [base.with_suffix(".py")]
        elif (base / "__init__.py").is_file():
            files = sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            raise UsageError(f"chain '{plan.chain}': module '{module}' of a call step is not in the project")
        for i in range(1, len(parts)):
            init = plan.root.joinpath(*parts[:i], "__init__.py")
            if init.is_file():
                files.append(init)
        for file in files:
            plan.add_file(file.relative_to(plan.root).as_posix())


def ship_includes(plan: PackagePlan, pkg: PackageSpec) -> None:
    """Project files matched by the package's ``include:`` patterns (never .git or .llmops)."""
    root = plan.root
    for pattern in pkg.include:
        matches = sorted(p for p in root.glob(pattern) if p.is_file())
        if not matches:
            raise UsageError(f"package '{plan.name}': include pattern '{pattern}' matches no file")
        for path in matches:
            rel = path.resolve().relative_to(root)  # glob never leaves root for relative patterns
            if rel.parts[0] in (".git", ".llmops"):
                continue
            plan.add_file(rel.as_posix())
