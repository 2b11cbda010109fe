"""The ``retrievers:`` section: one :class:`RetrieverSpec` per retriever, as declared.

Parsing never fails on a schema-valid document; what only matters once a retriever is used (its
dataset's format, an http store's host and port, the collection name Chroma accepts, chunk overlap
below size) is checked by :func:`llmops_cli.retrieval.spec.retriever_spec` when it is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_EMBEDDING = "all-minilm-l6-v2"  # embedded in the wheel: works offline
DEFAULT_STORE_PATH = ".llmops/chroma"
DEFAULT_TOP_K = 3
DEFAULT_CHUNK_SIZE = 500
DEFAULT_CHUNK_OVERLAP = 50
# Chroma's rule for collection names: 3-512 characters of [A-Za-z0-9._-], alphanumeric at both ends.
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]$")


@dataclass(frozen=True)
class StoreSpec:
    type: str = "persistent"  # or "http"
    path: str = DEFAULT_STORE_PATH
    host: str | None = None
    port: int | None = None

    def describe(self, root: Path) -> str:
        if self.type == "http":
            return f"http://{self.host}:{self.port}"
        return str(store_dir(root, self.path))

    def as_dict(self) -> dict[str, Any]:
        if self.type == "http":
            return {"type": "http", "host": self.host, "port": self.port}
        return {"type": "persistent", "path": self.path}


@dataclass(frozen=True)
class RetrieverSpec:
    """``retrievers.NAME``: ``embedding`` and ``collection`` are None when not declared (defaults apply)."""

    name: str
    dataset: str
    embedding: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP
    top_k: int = DEFAULT_TOP_K
    store: StoreSpec = StoreSpec()
    collection: str | None = None
    description: str | None = None

    @property
    def embedding_model(self) -> str:
        return self.embedding or DEFAULT_EMBEDDING

    @property
    def collection_name(self) -> str:
        return self.collection or default_collection(self.name)


def store_dir(root: Path, path: str) -> Path:
    folder = Path(path).expanduser()
    return folder if folder.is_absolute() else root / folder


def default_collection(name: str) -> str:
    """The retriever's name, lengthened when Chroma would refuse it (``kb`` -> ``kb-index``)."""
    return name if COLLECTION_NAME.match(name) else f"{name.rstrip('._-')}-index"


def parse_retriever(name: str, raw: Mapping[str, Any]) -> RetrieverSpec:
    chunk = raw.get("chunk") or {}
    store = raw.get("store") or {}
    port = store.get("port")
    return RetrieverSpec(
        name=name,
        dataset=str(raw.get("dataset")),
        embedding=str(raw["embedding"]) if raw.get("embedding") else None,
        chunk_size=int(chunk.get("size", DEFAULT_CHUNK_SIZE)),
        chunk_overlap=int(chunk.get("overlap", DEFAULT_CHUNK_OVERLAP)),
        top_k=int(raw.get("top_k", DEFAULT_TOP_K)),
        store=StoreSpec(
            type=store.get("type", "persistent"),
            path=store.get("path", DEFAULT_STORE_PATH),
            host=store.get("host"),
            port=int(port) if port is not None else None,
        ),
        collection=store.get("collection") or None,
        description=raw.get("description"),
    )


def parse_retrievers(section: Mapping[str, Any] | None) -> dict[str, RetrieverSpec]:
    """The ``retrievers:`` section (None when absent)."""
    return {name: parse_retriever(name, raw) for name, raw in (section or {}).items()}
