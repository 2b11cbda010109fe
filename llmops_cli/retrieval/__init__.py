"""Retrieval: load documents, chunk them, embed them into Chroma incrementally, and query.

Importing this package is cheap: torch, transformers and chromadb load inside the functions that
need them (and an index run with nothing to embed never loads the embedding model).

    stats = build_index(config, "kb")                 # llmops index kb
    hits = retrieve(config, "kb", "reset the thermostat")
    retriever = get_retriever(config, "kb")           # kept open for repeated queries
"""

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
