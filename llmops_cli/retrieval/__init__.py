"""Retrieval: load documents, chunk them, embed them into Chroma incrementally, and query.

Importing this package is cheap: torch, transformers and chromadb load inside the functions that
need them (and an index run with nothing to embed never loads the embedding model).

    stats = build_index(config, "kb")                 # llmops index kb
    hits = retrieve(config, "kb", "reset the thermostat")
    retriever = get_retriever(config, "kb")           # kept open for repeated queries
"""

from typing import TYPE_CHECKING

from llmops_cli.lazy import exports

if TYPE_CHECKING:
    from llmops_cli.config.retrievers import DEFAULT_EMBEDDING
    from llmops_cli.retrieval.chunking import Chunk, ChunkSettings, chunk_document, split_text
    from llmops_cli.retrieval.documents import Document, content_hash, load_documents
    from llmops_cli.retrieval.embeddings import Embedder, HFEmbedder, get_embedder, resolve_embedding
    from llmops_cli.retrieval.index import IndexStats, ProgressFn, build_index, index_fingerprint
    from llmops_cli.retrieval.retriever import RetrievedChunk, Retriever, forget_retriever, get_retriever, retrieve
    from llmops_cli.retrieval.spec import ResolvedRetriever, retriever_spec

__all__ = [
    "DEFAULT_EMBEDDING",
    "Chunk",
    "ChunkSettings",
    "Document",
    "Embedder",
    "HFEmbedder",
    "IndexStats",
    "ProgressFn",
    "RetrievedChunk",
    "Retriever",
    "ResolvedRetriever",
    "build_index",
    "chunk_document",
    "content_hash",
    "forget_retriever",
    "get_embedder",
    "get_retriever",
    "index_fingerprint",
    "load_documents",
    "resolve_embedding",
    "retrieve",
    "retriever_spec",
    "split_text",
]

# Each submodule loads when one of its names is first used (llmops_cli.lazy).
__getattr__, __dir__ = exports(
    __name__,
    {
        "llmops_cli.config.retrievers": ("DEFAULT_EMBEDDING",),
        "llmops_cli.retrieval.chunking": ("Chunk", "ChunkSettings", "chunk_document", "split_text"),
        "llmops_cli.retrieval.documents": ("Document", "content_hash", "load_documents"),
        "llmops_cli.retrieval.embeddings": ("Embedder", "HFEmbedder", "get_embedder", "resolve_embedding"),
        "llmops_cli.retrieval.index": ("IndexStats", "ProgressFn", "build_index", "index_fingerprint"),
        "llmops_cli.retrieval.retriever": (
            "RetrievedChunk",
            "Retriever",
            "forget_retriever",
            "get_retriever",
            "retrieve",
        ),
        "llmops_cli.retrieval.spec": ("ResolvedRetriever", "retriever_spec"),
    },
)
