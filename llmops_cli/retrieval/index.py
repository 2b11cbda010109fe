"""Build a retriever's index incrementally, and version what it holds.

Every chunk in the collection carries its document's id and sha256 in its metadata, so a run
compares the dataset with what is stored and embeds only new and changed documents; chunks of
deleted documents are removed. The collection's metadata holds a fingerprint of the embedding model
and the chunk settings: when either changes, old vectors are useless and the index is rebuilt.

The vector database stays in ``.llmops/`` (or on the Chroma server); what gets versioned in git is
a small ``index.json`` (see :mod:`llmops_cli.retrieval.versions`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.models.hashing import text_sha256
from llmops_cli.paths import atomic_write_text, file_lock
from llmops_cli.progress import ProgressFn
from llmops_cli.retrieval.chunking import Chunk, ChunkSettings, chunk_document
from llmops_cli.retrieval.documents import Document, content_hash, load_documents
from llmops_cli.retrieval.embeddings import Embedder, get_embedder
from llmops_cli.retrieval.spec import retriever_spec
from llmops_cli.retrieval.store import (
    FINGERPRINT_KEY,
    collection_fingerprint,
    create_collection,
    ensure_state_dir,
    get_collection,
    iter_metadatas,
    max_batch_size,
    open_client,
)

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.versioning import ArtifactRegistry

# progress phases: documents, load, chunks
_WRITE_BATCH = 256  # chunks embedded and written together: a crash loses at most this much work
_RESERVED = ("doc_id", "doc_sha256", "doc_chunks", "chunk_index", "source", "heading", "start", "end", "title")


@dataclass
class IndexStats:
    """What one ``build_index`` run did."""

    retriever: str
    collection: str
    store: str
    documents: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0
    rebuilt: str | None = None  # why every document was embedded again, if it was
    version: str | None = None  # the tag this run registered (None: nothing new to register)
    current_version: str | None = None  # the registered version that describes the index now
    dataset_hash: str = ""
    embedding_fingerprint: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed"] = self.changed
        data["chunks_per_s"] = round(self.chunks_per_s, 2)
        data["seconds"] = round(self.seconds, 4)
        return data


@dataclass
class _Stored:
    sha256: str
    ids: list[str] = field(default_factory=list)
    expected: int = -1  # doc_chunks as written; fewer ids means an interrupted write


def index_fingerprint(embedding_fingerprint: str, chunk: ChunkSettings) -> str:
    """What the vectors depend on besides the documents: the model and the chunking."""
    return text_sha256("llmops-index-v1", embedding_fingerprint, chunk.fingerprint)


def build_index(
    config: ProjectConfig,
    name: str,
    *,
    progress: ProgressFn | None = None,
    full: bool = False,
    embedder: Embedder | None = None,
    register: bool = True,
) -> IndexStats:
    """Bring retriever ``name``'s index up to date with its dataset; register a version if it changed.

    ``embedder`` replaces the configured model (tests pass a small deterministic one);
    ``register=False`` skips versioning (for library use outside a git repository).
    """
    report: ProgressFn = progress or (lambda _phase, _done, _total: None)
    spec = retriever_spec(config, name)
    registry = _registry(config) if register else None
    started = time.perf_counter()
    with file_lock(ensure_state_dir(config.root) / f"index-{spec.collection}.lock"):
        documents = load_documents(
            config.resolve_path(spec.dataset.path),
            root=config.root,
            file_format=spec.dataset.file_format,
            fields=spec.dataset.fields,
        )
        embedder = embedder or get_embedder(config, spec.embedding)
        fingerprint = index_fingerprint(embedder.fingerprint, spec.chunk)
        stats = IndexStats(spec.name, spec.collection, spec.store.describe(config.root), documents=len(documents))
        stats.dataset_hash = content_hash(documents)
        stats.embedding_fingerprint = embedder.fingerprint
        stamp = _Stamp(config, spec, fingerprint, stats.dataset_hash)
        if not full and stamp.matches():
            # Nothing changed since the last complete run: answer without opening chromadb,
            # whose import alone costs more than the whole check.
            stats.unchanged, stats.chunks_total, stats.current_version = len(documents), *stamp.recorded()
            stats.seconds = time.perf_counter() - started
            return stats
        stamp.clear()  # an interrupted run must not leave a stamp that vouches for a half index
        client = open_client(spec, config.root)
        collection: Any = get_collection(client, spec.collection)
        stats.rebuilt = _rebuild_reason(collection, fingerprint, full)
        if stats.rebuilt:
            metadata = {FINGERPRINT_KEY: fingerprint, "llmops:retriever": spec.name, "llmops:embedding": spec.embedding}
            collection = create_collection(client, spec.collection, metadata)
            stored: dict[str, _Stored] = {}
        else:
            stored = _stored_documents(collection)
        todo, removed_ids, replaced_ids, counts = _plan(documents, stored, stats)
        report("documents", stats.unchanged, len(documents))
        batch = min(_WRITE_BATCH, max_batch_size(client))
        _delete(collection, removed_ids, batch)
        chunks = [chunk for doc in todo for chunk in chunk_document(doc, spec.chunk)]
        for doc in todo:
            counts[doc.id] = 0
        for chunk in chunks:
            counts[chunk.doc_id] += 1
        shas = {doc.id: doc.sha256 for doc in todo}
        _embed_and_write(collection, embedder, chunks, (counts, shas), batch, report, stats)
        # Changed documents are overwritten in place (same chunk ids) and only then trimmed, so a
        # query running meanwhile always finds some version of them.
        written = {chunk.id for chunk in chunks}
        leftovers = [chunk_id for chunk_id in replaced_ids if chunk_id not in written]
        _delete(collection, leftovers, batch)
        stats.chunks_removed = len(removed_ids) + len(leftovers)
        stats.chunks_total = sum(counts.values())
        from llmops_cli.retrieval.retriever import forget_retriever

        forget_retriever(config.root, spec.name)  # a cached Retriever may hold a dropped collection
        if registry is not None:
            from llmops_cli.retrieval.versions import register_index

            register_index(registry, config, spec, documents, counts, stats)
        stamp.write(stats.chunks_total, stats.version or stats.current_version)
        stats.seconds = time.perf_counter() - started
    return stats


class _Stamp:
    """What the last complete run of a persistent index saw: settings fingerprint and dataset hash."""

    def __init__(self, config: ProjectConfig, spec: Any, fingerprint: str, dataset_hash: str) -> None:
        self.path = ensure_state_dir(config.root) / f"index-{spec.collection}.stamp.json"
        self.store_dir = spec.store_dir(config.root) if spec.store.type == "persistent" else None
        self.key = {"fingerprint": fingerprint, "dataset_hash": dataset_hash, "store": str(self.store_dir)}

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def matches(self) -> bool:
        if self.store_dir is None or not self.store_dir.is_dir():
            return False
        data = self._read()
        return data is not None and all(data.get(k) == v for k, v in self.key.items())

    def recorded(self) -> tuple[int, str | None]:
        data = self._read() or {}
        return int(data.get("chunks_total", 0)), data.get("version")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def write(self, chunks_total: int, version: str | None) -> None:
        if self.store_dir is not None:
            atomic_write_text(self.path, json.dumps({**self.key, "chunks_total": chunks_total, "version": version}))


def _registry(config: ProjectConfig) -> ArtifactRegistry:
    from llmops_cli.versioning import ArtifactRegistry

    registry = ArtifactRegistry.for_config(config)
    _ = registry.git  # outside a git repository: fail now, before minutes of embedding
    return registry


def _rebuild_reason(collection: Any, fingerprint: str, full: bool) -> str | None:
    if collection is None:
        return "first build"
    if full:
        return "--full"
    stored = collection_fingerprint(collection)
    if stored != fingerprint:
        return "embedding model or chunk settings changed" if stored else "collection not made by llmops"
    return None


def _stored_documents(collection: Any) -> dict[str, _Stored]:
    stored: dict[str, _Stored] = {}
    for chunk_id, meta in iter_metadatas(collection):
        meta = meta or {}
        doc_id = str(meta.get("doc_id", ""))
        entry = stored.setdefault(doc_id, _Stored(str(meta.get("doc_sha256", ""))))
        entry.ids.append(chunk_id)
        if meta.get("doc_sha256") != entry.sha256:
            entry.sha256 = ""  # mixed versions of one document: treat it as changed
        entry.expected = int(meta.get("doc_chunks", -1))
    return stored


def _plan(
    documents: list[Document], stored: dict[str, _Stored], stats: IndexStats
) -> tuple[list[Document], list[str], list[str], dict[str, int]]:
    """(documents to embed, chunk ids of deleted documents, chunk ids of changed documents,
    chunk count of every unchanged document)."""
    todo: list[Document] = []
    removed: list[str] = []
    replaced: list[str] = []
    counts: dict[str, int] = {}
    current = {doc.id for doc in documents}
    for doc in documents:
        old = stored.get(doc.id)
        if old is None:
            stats.added += 1
            todo.append(doc)
        elif old.sha256 == doc.sha256 and len(old.ids) == old.expected:
            stats.unchanged += 1
            counts[doc.id] = len(old.ids)
        else:
            stats.updated += 1
            todo.append(doc)
            replaced += old.ids
    for doc_id, old in stored.items():
        if doc_id not in current:
            stats.removed += 1
            removed += old.ids
    return todo, removed, replaced, counts


def _delete(collection: Any, ids: list[str], batch: int) -> None:
    for start in range(0, len(ids), batch):
        collection.delete(ids=ids[start : start + batch])


def _embed_and_write(
    collection: Any,
    embedder: Embedder,
    chunks: list[Chunk],
    docs: tuple[dict[str, int], dict[str, str]],
    batch: int,
    report: ProgressFn,
    stats: IndexStats,
) -> None:
    """Embed ``chunks`` and add them, ``batch`` at a time; ``docs`` = (chunk count, sha256) by doc id."""
    counts, shas = docs
    total, docs_done = len(chunks), stats.unchanged
    report("chunks", 0, total)
    if chunks and not getattr(embedder, "loaded", True):
        report("load", 0, 1)  # the first batch waits for the model; say so instead of a frozen bar
    done = 0
    for start in range(0, total, batch):
        part = chunks[start : start + batch]
        vectors = embedder.embed([c.embedding_text() for c in part], on_batch=_Counter(report, done, total))
        collection.upsert(
            ids=[c.id for c in part],
            embeddings=vectors,
            documents=[c.text for c in part],
            metadatas=[_metadata(c, counts[c.doc_id], shas[c.doc_id]) for c in part],
        )
        done += len(part)
        stats.chunks_embedded = done
        docs_done += sum(1 for c in part if c.index == counts[c.doc_id] - 1)
        report("chunks", done, total)
        report("documents", docs_done, stats.documents)


def _metadata(chunk: Chunk, doc_chunks: int, doc_sha: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "doc_id": chunk.doc_id,
        "doc_sha256": doc_sha,
        "doc_chunks": doc_chunks,
        "chunk_index": chunk.index,
        "source": chunk.source,
        "heading": chunk.heading or "",
        "start": chunk.start,
        "end": chunk.end,
    }
    if chunk.title:
        meta["title"] = chunk.title
    # A row's own metadata rides along for filtering and display; our keys win on a clash.
    meta.update({key: value for key, value in chunk.metadata.items() if key not in _RESERVED})
    return meta


class _Counter:
    """Turns the embedder's per-batch callbacks into running chunk totals for the progress bar."""

    def __init__(self, report: ProgressFn, done: int, total: int) -> None:
        self.report, self.done, self.total = report, done, total

    def __call__(self, batch: int) -> None:
        self.done += batch
        self.report("chunks", min(self.done, self.total), self.total)
