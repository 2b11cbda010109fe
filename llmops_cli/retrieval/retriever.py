"""Query a built index: embed the question, ask Chroma for the nearest chunks.

Chains call a retriever once per input, so :func:`get_retriever` keeps one :class:`Retriever` per
project and retriever in the process: the embedding model and the collection stay open between
queries.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError
from llmops_cli.retrieval.embeddings import Embedder, get_embedder
from llmops_cli.retrieval.spec import ResolvedRetriever, retriever_spec
from llmops_cli.retrieval.store import collection_fingerprint, get_collection, open_client

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig


@dataclass(frozen=True)
class RetrievedChunk:
    text: str
    source: str  # the document's file, project-relative
    heading: str | None  # the markdown section the chunk sits in
    score: float  # cosine similarity, 1.0 = same direction
    doc_id: str
    chunk_index: int
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def location(self) -> str:
        """``docs/wifi.md › Changing networks``: where to read more."""
        return f"{self.source} › {self.heading}" if self.heading else self.source

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source,
            "heading": self.heading,
            "score": self.score,
            "doc_id": self.doc_id,
            "chunk_index": self.chunk_index,
            "metadata": self.metadata,
        }


def _not_built(name: str) -> UsageError:
    return UsageError(f"Retriever '{name}' has no index yet.", hint=f"Run 'llmops index {name}'.")


class Retriever:
    """One retriever, ready for repeated queries."""

    def __init__(self, config: ProjectConfig, name: str, *, embedder: Embedder | None = None) -> None:
        from llmops_cli.retrieval.index import index_fingerprint

        self.spec: ResolvedRetriever = retriever_spec(config, name)
        self.root = config.root
        self.embedder: Embedder = embedder or get_embedder(config, self.spec.embedding)
        self._expected = index_fingerprint(self.embedder.fingerprint, self.spec.chunk)
        self.collection = self._open()

    @property
    def top_k(self) -> int:
        return self.spec.top_k

    def _open(self) -> Any:
        collection = get_collection(open_client(self.spec, self.root), self.spec.collection)
        if collection is None:
            raise _not_built(self.spec.name)
        if collection_fingerprint(collection) != self._expected:
            raise UsageError(
                f"The index of retriever '{self.spec.name}' was built with a different embedding model or "
                "chunk settings than llmops.yaml declares now.",
                hint=f"Run 'llmops index {self.spec.name}'.",
            )
        return collection

    def query(self, text: str, *, top_k: int | None = None) -> list[RetrievedChunk]:
        """The ``top_k`` (default: the retriever's) chunks closest to ``text``, best first."""
        return self.query_many([text], top_k=top_k)[0]

    def query_many(self, texts: Sequence[str], *, top_k: int | None = None) -> list[list[RetrievedChunk]]:
        """Several queries at once: one embedding batch, one store round trip."""
        if not texts:
            return []
        if any(not t.strip() for t in texts):
            raise UsageError("The query is empty.", hint="Pass the text to search for.")
        k = top_k or self.spec.top_k
        if k < 1:
            raise UsageError(f"top_k must be at least 1, got {k}.")
        vectors = self.embedder.embed(list(texts))
        result = self._query(vectors, k)
        return [
            [_chunk(doc, meta, dist) for doc, meta, dist in zip(docs, metas, dists, strict=True)]
            for docs, metas, dists in zip(result["documents"], result["metadatas"], result["distances"], strict=True)
        ]

    def _query(self, vectors: Any, k: int) -> Any:
        from chromadb.errors import NotFoundError

        include = ["documents", "metadatas", "distances"]
        try:
            return self.collection.query(query_embeddings=vectors, n_results=k, include=include)
        except NotFoundError:
            # Rebuilt by another process since we opened it (index --full drops the collection).
            self.collection = self._open()
            return self.collection.query(query_embeddings=vectors, n_results=k, include=include)


def _chunk(text: str | None, meta: dict[str, Any] | None, distance: float) -> RetrievedChunk:
    meta = dict(meta or {})
    own = {"doc_id", "doc_sha256", "doc_chunks", "chunk_index", "source", "heading", "start", "end"}
    return RetrievedChunk(
        text=text or "",
        source=str(meta.get("source", "")),
        heading=str(meta["heading"]) if meta.get("heading") else None,
        score=1.0 - float(distance),  # cosine space: distance = 1 - cosine similarity
        doc_id=str(meta.get("doc_id", "")),
        chunk_index=int(meta.get("chunk_index", 0)),
        metadata={key: value for key, value in meta.items() if key not in own},
    )


_CACHE: dict[tuple[str, ResolvedRetriever], Retriever] = {}
_CACHE_LOCK = threading.Lock()


def get_retriever(config: ProjectConfig, name: str) -> Retriever:
    """The process-wide :class:`Retriever` for ``name`` (rebuilt when its llmops.yaml entry changes)."""
    key = (str(config.root), retriever_spec(config, name))
    with _CACHE_LOCK:
        retriever = _CACHE.get(key)
        if retriever is None:
            retriever = _CACHE[key] = Retriever(config, name)
        return retriever


def forget_retriever(root: Path, name: str) -> None:
    """Drop cached retrievers of ``name`` (after its index was rebuilt)."""
    with _CACHE_LOCK:
        for key in [k for k in _CACHE if k[0] == str(root) and k[1].name == name]:
            del _CACHE[key]


def retrieve(config: ProjectConfig, name: str, query: str, *, top_k: int | None = None) -> list[RetrievedChunk]:
    """The chunks of retriever ``name`` closest to ``query``, best first."""
    return get_retriever(config, name).query(query, top_k=top_k)
