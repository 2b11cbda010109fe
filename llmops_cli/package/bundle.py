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
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError
from llmops_cli.filenames import ADAPTER_CONFIG
from llmops_cli.package.archive import Entry
from llmops_cli.package.bundle_parts import monitor_of, retrievers_of, ship_code, ship_includes
from llmops_cli.package.plan import EMBEDDED_PIP, PLACEHOLDER_DIR, PackagePlan
from llmops_cli.package.requirements import Needs
from llmops_cli.package.sources import Component, registered
from llmops_cli.versioning.artifacts import MANIFEST

if TYPE_CHECKING:
    from llmops_cli.config.chains import PromptStep
    from llmops_cli.config.packages import PackageSpec
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.versioning import ArtifactRegistry

__all__ = ["PackagePlan", "plan_package"]


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
    raw_doc: dict[str, Any] = config.written if config.written is not None else load_located(config.path).data
    # ^ as written: ${VAR} not expanded (the validated document; only deep copies of it are changed)
    plan = PackagePlan(name, config, pkg.chain, pkg.model, pkg.adapter, pkg.description or "")
    registry = ArtifactRegistry.for_config(config)
    plan.git_paths.append(config.path)
    chain = _chain(plan, raw_doc)
    prompts = _prompts(plan, pkg)
    datasets: dict[str, dict[str, Any]] = {}
    adapters = _models_and_adapters(plan, raw_doc, registry, chain, prompts, datasets)
    retrievers = retrievers_of(plan, raw_doc, registry, pkg, datasets)
    monitor = monitor_of(plan, raw_doc, datasets)
    ship_code(plan)
    ship_includes(plan, pkg)
    _evals(plan, registry, prompts)
    plan.bundle_config = _assemble(plan, raw_doc, chain, prompts, datasets, adapters, retrievers, monitor)
    plan.needs = Needs(
        retrieval=bool(retrievers),
        adapters=bool(plan.adapters),
        bitsandbytes=any(m.bits for m in plan.models.values()),
        llama_cpp=any(m.llama_cpp for m in plan.models.values()),
        no_deps=tuple(sorted({EMBEDDED_PIP[e] for e in plan.embeddings if e in EMBEDDED_PIP})),
    )
    return plan


# -- chain and prompts ----------------------------------------------------------------------------------


def _chain(plan: PackagePlan, raw_doc: dict[str, Any]) -> dict[str, Any] | None:
    if not plan.chain:
        return None
    chain = copy.deepcopy(raw_doc["chains"][plan.chain])
    plan.chain_inputs = list(plan.chain_spec.inputs) if plan.chain_spec else []
    blob = json.dumps(plan.config.data["chains"][plan.chain], sort_keys=True, default=str).encode()
    plan.components.append(
        Component("chain", plan.chain, f"llmops.yaml#chains.{plan.chain}", "sha256:" + hashlib.sha256(blob).hexdigest())
    )
    return chain


def _prompt_steps(plan: PackagePlan) -> tuple[PromptStep, ...]:
    return plan.chain_spec.prompt_steps() if plan.chain_spec else ()


def _written_prompt_steps(chain: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The prompt steps of the bundle's copy of the chain, as written (to be rewritten)."""
    return [s for s in (chain or {}).get("steps", []) if isinstance(s, dict) and "prompt" in s]


def _prompts(plan: PackagePlan, pkg: PackageSpec) -> dict[str, Any]:
    from llmops_cli.prompts import load_prompt

    names = [s.prompt for s in _prompt_steps(plan)] + list(pkg.prompts)
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
        plan.ship(raw_doc, registry, plan.model)
        for written in _written_prompt_steps(chain):
            written["model"] = plan.model
            written.pop("adapter", None)
            if plan.adapter:
                written["adapter"] = plan.adapter
        wanted_adapters = [plan.adapter] if plan.adapter else []
    else:
        for step in _prompt_steps(plan):
            model = step.model or prompts[step.prompt].model
            if not model:
                raise UsageError(f"chain '{plan.chain}': step '{step.id or step.prompt}' has no model")
            plan.ship(raw_doc, registry, model)
            used_with.setdefault(step.prompt, model)
            if step.adapter:
                wanted_adapters.append(step.adapter)
    adapters: dict[str, dict[str, Any]] = {}
    for adapter in dict.fromkeys(wanted_adapters):
        adapters[adapter] = _adapter(plan, raw_doc, registry, adapter, datasets)
        if not plan.model:
            plan.ship(raw_doc, registry, str(adapters[adapter]["base"]))
    # Models the prompt files name but the steps override become aliases (no second copy of weights);
    # an extra prompt no step uses keeps its own model.
    for prompt, spec in prompts.items():
        if not spec.model or spec.model in plan.models or spec.model in plan.aliases:
            continue
        target = plan.model or used_with.get(prompt)
        if target:
            plan.aliases[spec.model] = target
        else:
            plan.ship(raw_doc, registry, spec.model)
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
    if ADAPTER_CONFIG not in art.files:
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
        if not relevant or not (folder / MANIFEST).is_file():
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
