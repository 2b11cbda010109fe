"""A package plan: what a bundle ships, gathered by :func:`~llmops_cli.package.bundle.plan_package`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError
from llmops_cli.package.archive import Entry
from llmops_cli.package.requirements import Needs
from llmops_cli.package.sources import Component, Registered, ShippedModel, ship_model, ship_quantized

if TYPE_CHECKING:
    from llmops_cli.config.chains import ChainSpec
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.versioning import ArtifactRegistry

PLACEHOLDER_DIR = "data/not-shipped"
GENERATED = ("manifest.json", "llmops.yaml", "README.md", "Dockerfile", "serve.py", "requirements.txt")


@dataclass
class RetrieverInfo:
    """A shipped retriever, for the manifest and the model card."""

    name: str
    embedding: str
    documents: int
    chunks: int
    index: Registered


@dataclass
class PackagePlan:
    """Package ``name``: the files it ships (``entries``), what they are (``components``), its llmops.yaml."""

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

    @property
    def chain_spec(self) -> ChainSpec | None:
        """The package's chain as the project declares it (typed; the bundle rewrites a copy as written)."""
        return self.config.chains[self.chain] if self.chain else None

    def ship(self, raw_doc: dict[str, Any], registry: ArtifactRegistry, model: str) -> ShippedModel:
        """Ship ``model`` (a model or a quantized variant) once: its files, component and memory need."""
        if model in self.models:
            return self.models[model]
        config = self.config
        if model in config.quantized:
            shipped = ship_quantized(config, registry, model, raw_doc)
            self.git_paths.append(registry.folder("quantized", model))
        elif model in config.models:
            shipped = ship_model(config, config.models[model], dict((raw_doc.get("models") or {}).get(model) or {}))
            here = [e.source for e in shipped.files if e.source and e.source.resolve().is_relative_to(self.root)]
            self.git_paths += here
        else:
            raise UsageError(f"package '{self.name}': no model or quantized model named '{model}'")
        for entry in shipped.files:
            self.add(entry, shipped.expected.get(entry.path))
        if shipped.component:
            self.components.append(shipped.component)
        self.models[model] = shipped
        return shipped


def embedded_pip() -> dict[str, str]:
    """Embedded model name -> the pip package that ships it (installed with --no-deps in the bundle)."""
    from llmops_cli.models import EMBEDDED_MODELS

    return {name: m.pip_name for name, m in EMBEDDED_MODELS.items()}


EMBEDDED_PIP = embedded_pip()
