"""A retriever ready to use: its ``retrievers:`` entry checked, its dataset and chunking resolved."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.config.references import check_retriever
from llmops_cli.config.retrievers import RetrieverSpec, StoreSpec, store_dir
from llmops_cli.errors import ConfigError, UsageError
from llmops_cli.retrieval.chunking import ChunkSettings

if TYPE_CHECKING:
    from llmops_cli.config.project import DatasetSpec, ProjectConfig


@dataclass(frozen=True)
class ResolvedRetriever:
    """A :class:`RetrieverSpec` with defaults filled in, its dataset looked up and its settings checked."""

    name: str
    dataset: DatasetSpec
    embedding: str
    chunk: ChunkSettings
    top_k: int
    store: StoreSpec
    collection: str

    def store_dir(self, root: Path) -> Path:
        return store_dir(root, self.store.path)

    def index_config(self) -> dict[str, Any]:
        """The settings that decide what the index holds (top_k and description do not; where it
        is stored is recorded beside them)."""
        return {
            "dataset": self.dataset.name,
            "dataset_path": self.dataset.path,
            "embedding": self.embedding,
            "chunk": {"size": self.chunk.size, "overlap": self.chunk.overlap},
        }


def retriever_spec(config: ProjectConfig, name: str) -> ResolvedRetriever:
    """The ``retrievers.NAME`` entry, checked and completed with defaults."""
    spec: RetrieverSpec | None = config.retrievers.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(config.retrievers), n=1)
        declared = ", ".join(config.retrievers) or "none"
        hint = f"Did you mean '{close[0]}'?" if close else "Declare it under 'retrievers:' in llmops.yaml."
        raise UsageError(f"Unknown retriever '{name}' (declared: {declared}).", hint=hint)
    check_retriever(config, spec)
    try:
        chunk = ChunkSettings(spec.chunk_size, spec.chunk_overlap)
    except ConfigError as error:
        raise ConfigError(f"retrievers.{name}.chunk: {error.message}", hint=error.hint) from None
    return ResolvedRetriever(
        name=name,
        dataset=config.datasets[spec.dataset],
        embedding=spec.embedding_model,
        chunk=chunk,
        top_k=spec.top_k,
        store=spec.store,
        collection=spec.collection_name,
    )
