"""Version what an index holds: ``index/NAME/vN`` with a small, deterministic ``index.json``.

The vectors stay in the store; the artifact names the retriever settings, the embedding model's
fingerprint and every document's sha256 and chunk count, so ``llmops show index/kb@v3`` says exactly
what was searchable then. Inputs are the dataset's content hash and the embedding fingerprint. A new
version is registered only when ``index.json`` differs from the latest one's: re-running an
unchanged index (or re-running after a registration failed) does the right thing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.retrieval.documents import Document
from llmops_cli.retrieval.spec import ResolvedRetriever

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.retrieval.index import IndexStats
    from llmops_cli.versioning import ArtifactRegistry

INDEX_FILE = "index.json"


def index_manifest(
    spec: ResolvedRetriever, config: ProjectConfig, documents: list[Document], counts: dict[str, int], stats: IndexStats
) -> dict[str, Any]:
    """The content of ``index.json``: deterministic, so an unchanged index gives identical bytes."""
    return {
        "retriever": spec.name,
        "config": spec.index_config(),
        "embedding": {"model": spec.embedding, "fingerprint": stats.embedding_fingerprint},
        "collection": spec.collection,
        "store": spec.store.as_dict(),
        "dataset": {"name": spec.dataset.name, "path": spec.dataset.path, "content_hash": stats.dataset_hash},
        "documents": [
            {"id": doc.id, "source": doc.source, "sha256": doc.sha256, "chunks": counts.get(doc.id, 0)}
            for doc in sorted(documents, key=lambda d: d.id)
        ],
        "chunks": sum(counts.values()),
    }


def register_index(
    registry: ArtifactRegistry,
    config: ProjectConfig,
    spec: ResolvedRetriever,
    documents: list[Document],
    counts: dict[str, int],
    stats: IndexStats,
) -> None:
    """Register ``index/NAME/vN`` unless the latest version already describes this index."""
    from llmops_cli.versioning import ArtifactRef, Input

    manifest = index_manifest(spec, config, documents, counts, stats)
    data = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    versions = registry.versions(ArtifactRef("index", spec.name))
    if versions:
        latest = versions[-1]
        files = registry.read_manifest(latest).get("files", [])
        if any(f.get("path") == INDEX_FILE and f.get("sha256") == digest for f in files):
            stats.current_version = latest.tag  # up to date: the latest version already says this
            return
    registry.ensure_state_dir()
    tmp_dir = registry.state / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="index-", suffix=".json", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        version = registry.register(
            "index",
            spec.name,
            {INDEX_FILE: Path(tmp_name)},
            inputs=[Input(spec.dataset.path, stats.dataset_hash), Input(spec.embedding, stats.embedding_fingerprint)],
            config_hash=config.section_hash("retrievers", spec.name),
            metrics={
                "documents": stats.documents,
                "chunks": stats.chunks_total,
                "chunks_embedded": stats.chunks_embedded,
            },
            params={
                "embedding": spec.embedding,
                "chunk_size": spec.chunk.size,
                "chunk_overlap": spec.chunk.overlap,
                "collection": spec.collection,
            },  # fmt: skip
            summary=_summary(stats),
        )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
    stats.version = stats.current_version = version.tag


def _summary(stats: IndexStats) -> str:
    how = f"rebuilt ({stats.rebuilt})" if stats.rebuilt else "incremental"
    return (
        f"{stats.documents} documents, {stats.chunks_total} chunks; {how}: {stats.added} added, "
        f"{stats.updated} updated, {stats.removed} removed, {stats.chunks_embedded} chunks embedded"
    )
