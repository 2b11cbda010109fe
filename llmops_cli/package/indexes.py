"""Retriever indexes in a package: a deterministic export out of Chroma, and the restore into one.

Chroma's on-disk files change every time a client opens them (its SQLite and HNSW files are
rewritten even by a query), so copying them would make every build differ. The package carries the
collection's content instead, sorted by chunk id:

- ``artifacts/index/NAME/vectors/collection.json``: collection name, metadata (with the fingerprint
  of the embedding model and chunk settings) and shape;
- ``.../chunks.jsonl``: one ``{"id", "document", "metadata"}`` per line;
- ``.../embeddings.npy``: the float32 vectors, row i for line i.

:func:`restore_index` loads them into the bundle's own Chroma store (``llmops package prepare``,
run by the Dockerfile and by ``serve.py``). The export is checked against the registered
``index/NAME`` version and the documents on disk, so a stale index is never shipped.

Reuse: opening Chroma costs seconds, so a checked export is kept in ``.llmops/cache/index-export/``
under a key made of the registered ``index/NAME`` version's manifest hash, the export format, the
collection and the store's collection folders (a rebuilt collection gets a new one). A later build
with the same key reuses it after checking the documents on disk again; anything else exports anew.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError
from llmops_cli.package.archive import Entry

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

EXPORT_FORMAT = "llmops-index-export/1"
VECTORS_DIR = "vectors"
_PAGE = 2000


@dataclass
class IndexExport:
    collection: str
    chunks: int
    documents: int
    dimension: int
    entries: list[Entry]


def export_index(
    config: ProjectConfig, name: str, index_json: dict[str, Any], prefix: str, *, registered_hash: str | None = None
) -> IndexExport:
    """The collection of retriever ``name`` as deterministic files under ``prefix/vectors/``
    (from the export cache when ``registered_hash``, the index version's manifest hash, matches)."""
    from llmops_cli.retrieval import retriever_spec

    spec = retriever_spec(config, name)
    key = _cache_key(config, spec, prefix, registered_hash)
    cached = _cached(config, name, key, prefix) if key else None
    if cached is not None:
        _check_documents(config, name, spec, index_json)
        return cached
    exported = _export(config, name, spec, index_json, prefix)
    if key:
        _store(config, name, key, exported)
    return exported


def _export(config: ProjectConfig, name: str, spec: Any, index_json: dict[str, Any], prefix: str) -> IndexExport:
    from llmops_cli.retrieval.retriever import Retriever

    collection = Retriever(config, name).collection  # checks the embedding/chunk fingerprint too
    ids, documents, metadatas, vectors = _read_all(collection)
    _check_current(config, name, spec, index_json, metadatas)
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    lines = [
        json.dumps(
            {"id": ids[i], "document": documents[i], "metadata": metadatas[i]}, sort_keys=True, ensure_ascii=False
        )
        for i in order
    ]
    matrix = _matrix([vectors[i] for i in order])
    meta: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "collection": spec.collection,
        "metadata": dict(sorted((collection.metadata or {}).items())),
        "count": len(ids),
        "dimension": int(matrix.shape[1]) if len(ids) else 0,
        "space": "cosine",
    }
    folder = f"{prefix}/{VECTORS_DIR}"
    entries = [
        Entry(f"{folder}/collection.json", data=(json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()),
        Entry(f"{folder}/chunks.jsonl", data=("\n".join(lines) + "\n").encode("utf-8") if lines else b""),
        Entry(f"{folder}/embeddings.npy", data=_npy_bytes(matrix)),
    ]
    doc_count = len({m.get("doc_id") for m in metadatas})
    return IndexExport(spec.collection, len(ids), doc_count, meta["dimension"], entries)


def _read_all(collection: Any) -> tuple[list[str], list[str], list[dict[str, Any]], list[Any]]:
    ids: list[str] = []
    documents: list[str] = []
    metadatas: list[dict[str, Any]] = []
    vectors: list[Any] = []
    offset = 0
    while True:
        page = collection.get(include=["documents", "metadatas", "embeddings"], limit=_PAGE, offset=offset)
        count = len(page["ids"])
        ids += list(page["ids"])
        documents += [d or "" for d in (page.get("documents") or [""] * count)]
        metadatas += [dict(m or {}) for m in (page.get("metadatas") or [{}] * count)]
        embeddings = page.get("embeddings")
        vectors += list(embeddings) if embeddings is not None else []
        if count < _PAGE:
            break
        offset += count
    if len(vectors) != len(ids):
        raise UsageError(
            f"the index collection '{collection.name}' returned {len(vectors)} vectors for {len(ids)} chunks"
        )
    return ids, documents, metadatas, vectors


def _check_current(
    config: ProjectConfig, name: str, spec: Any, index_json: dict[str, Any], metadatas: list[dict[str, Any]]
) -> None:
    """The store, the registered index.json and the documents on disk must all say the same thing."""
    registered = {d["id"]: d["sha256"] for d in index_json.get("documents", [])}
    stored = {str(m.get("doc_id")): str(m.get("doc_sha256")) for m in metadatas}
    on_disk = _on_disk(config, spec)
    stale = on_disk != registered or stored != registered or len(metadatas) != int(index_json.get("chunks", -1))
    if stale:
        changed = sorted(k for k in on_disk.keys() | registered.keys() if on_disk.get(k) != registered.get(k))
        detail = f" (changed documents: {', '.join(changed[:5])}{'...' if len(changed) > 5 else ''})" if changed else ""
        raise UsageError(
            f"The index of retriever '{name}' is out of date with its documents or its registered version{detail}.",
            hint=f"Run 'llmops index {name}'.",
        )


def _on_disk(config: ProjectConfig, spec: Any) -> dict[str, str]:
    from llmops_cli.retrieval import load_documents

    documents = load_documents(
        config.resolve_path(spec.dataset.path),
        root=config.root,
        file_format=spec.dataset.file_format,
        fields=spec.dataset.fields,
    )
    return {d.id: d.sha256 for d in documents}


def _check_documents(config: ProjectConfig, name: str, spec: Any, index_json: dict[str, Any]) -> None:
    """A cached export: the store was checked when it was made; the documents on disk are checked now."""
    registered = {d["id"]: d["sha256"] for d in index_json.get("documents", [])}
    on_disk = _on_disk(config, spec)
    if on_disk != registered:
        changed = sorted(k for k in on_disk.keys() | registered.keys() if on_disk.get(k) != registered.get(k))
        raise UsageError(
            f"The index of retriever '{name}' is out of date with its documents or its registered version "
            f"(changed documents: {', '.join(changed[:5])}{'...' if len(changed) > 5 else ''}).",
            hint=f"Run 'llmops index {name}'.",
        )


# -- export cache -----------------------------------------------------------------------------------------

_CACHE_DIR = "index-export"
_CACHED_FILES = ("collection.json", "chunks.jsonl", "embeddings.npy")


def _cache_key(config: ProjectConfig, spec: Any, prefix: str, registered_hash: str | None) -> str | None:
    if not registered_hash or spec.store.type != "persistent":
        return None  # a server's collection can change behind our back: always export
    folder = spec.store_dir(config.root)
    collections = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not collections:
        return None
    parts = [EXPORT_FORMAT, prefix, str(spec.collection), registered_hash, *collections]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _cache_folder(config: ProjectConfig, name: str) -> Path:
    from llmops_cli.paths import STATE_DIR

    return config.root / STATE_DIR / "cache" / _CACHE_DIR / name


def _cached(config: ProjectConfig, name: str, key: str, prefix: str) -> IndexExport | None:
    folder = _cache_folder(config, name)
    try:
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
        if info.get("key") != key:
            return None
        data = {f: (folder / f).read_bytes() for f in _CACHED_FILES}
    except (OSError, ValueError):
        return None
    if any(hashlib.sha256(data[f]).hexdigest() != info.get("sha256", {}).get(f) for f in _CACHED_FILES):
        return None  # damaged or half-written: export again
    entries = [Entry(f"{prefix}/{VECTORS_DIR}/{f}", data=data[f]) for f in _CACHED_FILES]
    return IndexExport(str(info["collection"]), int(info["chunks"]), int(info["documents"]), int(info["dimension"]),
                       entries)  # fmt: skip


def _store(config: ProjectConfig, name: str, key: str, exported: IndexExport) -> None:
    from llmops_cli.paths import atomic_write_bytes

    folder = _cache_folder(config, name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shas = {}
        for entry in exported.entries:
            base = entry.path.rsplit("/", 1)[-1]
            assert entry.data is not None
            atomic_write_bytes(folder / base, entry.data)
            shas[base] = hashlib.sha256(entry.data).hexdigest()
        info = {"key": key, "collection": exported.collection, "chunks": exported.chunks,
                "documents": exported.documents, "dimension": exported.dimension, "sha256": shas}  # fmt: skip
        atomic_write_bytes(folder / "info.json", (json.dumps(info, indent=2) + "\n").encode())
    except OSError:
        return  # only a cache


def _matrix(rows: list[Any]) -> Any:
    import numpy as np

    if not rows:
        return np.zeros((0, 0), dtype="<f4")
    return np.asarray(np.stack([np.asarray(r, dtype=np.float32) for r in rows]), dtype="<f4")


def _npy_bytes(matrix: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, matrix, allow_pickle=False)
    return buffer.getvalue()


# -- restore -----------------------------------------------------------------------------------------


def restore_index(
    config: ProjectConfig, name: str, folder: Path, progress: Callable[[int, int], None] | None = None
) -> bool:
    """Load an exported index into the project's Chroma store; False when it was already there."""
    import numpy as np

    from llmops_cli.retrieval import retriever_spec
    from llmops_cli.retrieval.store import (
        FINGERPRINT_KEY,
        create_collection,
        get_collection,
        max_batch_size,
        open_client,
    )

    meta = json.loads((folder / "collection.json").read_text(encoding="utf-8"))
    if meta.get("format") != EXPORT_FORMAT:
        raise UsageError(f"{folder}: unknown index export format {meta.get('format')!r}")
    spec = retriever_spec(config, name)
    client = open_client(spec, config.root)
    existing = get_collection(client, spec.collection)
    wanted = meta["metadata"].get(FINGERPRINT_KEY)
    stored = (existing.metadata or {}).get(FINGERPRINT_KEY) if existing is not None else None
    if existing is not None and stored == wanted and existing.count() == meta["count"]:
        return False
    rows = [json.loads(line) for line in (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line]
    vectors = np.load(folder / "embeddings.npy", allow_pickle=False)
    if len(rows) != meta["count"] or vectors.shape[0] != len(rows):
        raise UsageError(f"{folder}: the index export is inconsistent ({len(rows)} chunks, {vectors.shape[0]} vectors)")
    collection = create_collection(client, spec.collection, dict(meta["metadata"]))
    batch = min(512, max_batch_size(client))
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        collection.upsert(
            ids=[r["id"] for r in part],
            documents=[r["document"] for r in part],
            metadatas=[r["metadata"] or None for r in part],
            embeddings=vectors[start : start + batch],
        )
        if progress:
            progress(min(start + batch, len(rows)), len(rows))
    from llmops_cli.retrieval.retriever import forget_retriever

    forget_retriever(config.root, name)
    return True
