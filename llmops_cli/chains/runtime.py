"""What chain steps need from the project: prompts, providers, adapters and retrievers.

``ProjectRuntime`` is the real thing; tests pass their own object with the same methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from llmops_cli.config import ProjectConfig
from llmops_cli.errors import UsageError
from llmops_cli.filenames import ADAPTER_CONFIG
from llmops_cli.generation import Message, Provider


class Runtime(Protocol):
    project_root: Path

    def prompt(self, name: str) -> Any: ...
    def render_prompt(self, spec: Any, variables: dict[str, Any]) -> list[Message]: ...
    def adapter_path(self, name: str) -> Path | None: ...
    def provider(self, model: str, adapter: Path | None) -> Provider: ...
    def retrieve(self, name: str, query: str, top_k: int | None) -> list[Any]: ...


class ProjectRuntime:
    def __init__(self, config: ProjectConfig, *, use_adapters: bool = True) -> None:
        self.config = config
        self.project_root = config.root
        self.use_adapters = use_adapters
        self._prompts: dict[str, Any] = {}

    def prompt(self, name: str) -> Any:
        from llmops_cli.prompts import load_prompt

        if name not in self._prompts:
            self._prompts[name] = load_prompt(self.config, name)
        return self._prompts[name]

    def render_prompt(self, spec: Any, variables: dict[str, Any]) -> list[Message]:
        from llmops_cli.prompts import render

        return render(spec, variables)

    def adapter_path(self, name: str) -> Path | None:
        """The checked-out version of a trained adapter, or None when adapters are switched off."""
        if not self.use_adapters:
            return None
        from llmops_cli.versioning import ArtifactRegistry

        folder = ArtifactRegistry.for_config(self.config).folder("adapter", name)
        if not (folder / ADAPTER_CONFIG).is_file():
            raise UsageError(
                f"adapter '{name}' has no trained version in {folder.relative_to(self.config.root)}",
                hint=f"Run 'llmops tune {name}' (or 'llmops checkout adapter/{name}@vN'), "
                "or run the chain with --no-adapters to use the base model.",
            )
        return folder

    def provider(self, model: str, adapter: Path | None) -> Provider:
        from llmops_cli.providers import get_provider

        return get_provider(self.config, model, adapter_path=adapter)

    def retrieve(self, name: str, query: str, top_k: int | None) -> list[Any]:
        from llmops_cli.retrieval import get_retriever

        return list(get_retriever(self.config, name).query(query, top_k=top_k))
