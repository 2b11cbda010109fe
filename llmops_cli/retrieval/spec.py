"""A ``retrievers:`` entry of llmops.yaml, with its defaults filled in."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import ConfigError, UsageError
from llmops_cli.retrieval.chunking import ChunkSettings
from llmops_cli.retrieval.embeddings import DEFAULT_EMBEDDING

if TYPE_CHECKING:
    from llmops_cli.config.project import DatasetSpec, ProjectConfig

DEFAULT_STORE_PATH = ".llmops/chroma"
DEFAULT_TOP_K = 3
# Chroma's rule for collection names: 3-512 characters of [A-Za-z0-9._-], alphanumeric at both ends.
_COLLECTION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]$")


@dataclass(frozen=True)
class StoreSpec:
    type: str = "persistent"  # or "http"
    path: str = DEFAULT_STORE_PATH
    host: str | None = None
    port: int | None = None

    def describe(self, root: Path) -> str:
        if self.type == "http":
            return f"http://{self.host}:{self.port}"
        return str(_store_dir(root, self.path))

    def as_dict(self) -> dict[str, Any]:
        if self.type == "http":
            return {"type": "http", "host": self.host, "port": self.port}
        return {"type": "persistent", "path": self.path}


@dataclass(frozen=True)
class RetrieverSpec:
    name: str
    dataset: DatasetSpec
    embedding: str
    chunk: ChunkSettings
    top_k: int
    store: StoreSpec
    collection: str

    def store_dir(self, root: Path) -> Path:
        return _store_dir(root, self.store.path)

    def index_config(self) -> dict[str, Any]:
        """The settings that decide what the index holds (top_k and description do not; where it
        is stored is recorded beside them)."""
        return {
            "dataset": self.dataset.name,
            "dataset_path": self.dataset.path,
            "embedding": self.embedding,
            "chunk": {"size": self.chunk.size, "overlap": self.chunk.overlap},
        }


def _store_dir(root: Path, path: str) -> Path:
    folder = Path(path).expanduser()
    return folder if folder.is_absolute() else root / folder


def default_collection(name: str) -> str:
    """The retriever's name, lengthened when Chroma would refuse it (``kb`` -> ``kb-index``)."""
    return name if _COLLECTION.match(name) else f"{name.rstrip('._-')}-index"


def retriever_spec(config: ProjectConfig, name: str) -> RetrieverSpec:
    """The ``retrievers.NAME`` entry, checked and completed with defaults."""
    entry = config.retrievers.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(config.retrievers), n=1)
        declared = ", ".join(config.retrievers) or "none"
        hint = f"Did you mean '{close[0]}'?" if close else "Declare it under 'retrievers:' in llmops.yaml."
        raise UsageError(f"Unknown retriever '{name}' (declared: {declared}).", hint=hint)
    raw = entry.raw
    dataset = config.datasets.get(str(raw.get("dataset")))
    if dataset is None:
        raise ConfigError(f"retrievers.{name}.dataset: no dataset named '{raw.get('dataset')}'.")
    if dataset.format not in ("documents", "text"):
        raise ConfigError(
            f"retrievers.{name}.dataset: '{dataset.name}' has format '{dataset.format}'; "
            "a retriever needs a 'documents' or 'text' dataset."
        )
    chunk = raw.get("chunk") or {}
    store = raw.get("store") or {}
    store_spec = StoreSpec(
        type=store.get("type", "persistent"),
        path=store.get("path", DEFAULT_STORE_PATH),
        host=store.get("host"),
        port=store.get("port"),
    )
    if store_spec.type == "http" and (not store_spec.host or not store_spec.port):
        raise ConfigError(
            f"retrievers.{name}.store: type http needs 'host' and 'port'.",
            hint="e.g. store: {type: http, host: localhost, port: 8000}",
        )
    collection = store.get("collection") or default_collection(name)
    if not _COLLECTION.match(collection) or ".." in collection:
        raise ConfigError(
            f"retrievers.{name}.store.collection: '{collection}' is not a valid Chroma collection name.",
            hint="Use 3-512 letters, digits, '.', '_' or '-', starting and ending with a letter or digit.",
        )
    try:
        chunk_settings = ChunkSettings(int(chunk.get("size", 500)), int(chunk.get("overlap", 50)))
    except ConfigError as error:
        raise ConfigError(f"retrievers.{name}.chunk: {error.message}", hint=error.hint) from None
    return RetrieverSpec(
        name=name,
        dataset=dataset,
        embedding=str(raw.get("embedding") or DEFAULT_EMBEDDING),
        chunk=chunk_settings,
        top_k=int(raw.get("top_k", DEFAULT_TOP_K)),
        store=store_spec,
        collection=collection,
    )
