"""The Chroma vector store behind a retriever: a local ``PersistentClient`` or a server over HTTP.

We always pass our own embeddings, so collections are opened with ``embedding_function=None``:
Chroma's default function would download an ONNX model on first use, and nothing here may touch
the network. Product telemetry is switched off too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops_cli.errors import UnavailableError, require
from llmops_cli.retrieval.spec import ResolvedRetriever

COLLECTION_SPACE = "cosine"
FINGERPRINT_KEY = "llmops:fingerprint"
_PAGE = 5000  # rows per get() when listing what a collection holds

_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _settings() -> Any:
    from chromadb.config import Settings

    # Identical settings every time: Chroma refuses a second client on a path with different ones.
    return Settings(anonymized_telemetry=False, allow_reset=False)


def open_client(spec: ResolvedRetriever, root: Path) -> Any:
    """A Chroma client for ``spec``'s store, shared by everything in this process."""
    require("chromadb", extra="rag", purpose="The vector store")
    key = spec.store.describe(root)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = _connect(spec, root)
        return client


def _connect(spec: ResolvedRetriever, root: Path) -> Any:
    import chromadb

    if spec.store.type == "http":
        try:
            return chromadb.HttpClient(host=str(spec.store.host), port=int(spec.store.port or 0), settings=_settings())
        except Exception as error:  # connection refused, DNS, TLS: all mean "not reachable"
            raise UnavailableError(
                f"Cannot reach the Chroma server at {spec.store.describe(root)}: {error}",
                hint="Start it ('chroma run --path DIR --port PORT') or use store: {type: persistent}.",
            ) from error
    folder = spec.store_dir(root)
    ensure_state_dir(root)  # the default store path is inside it
    folder.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(folder), settings=_settings())


def ensure_state_dir(root: Path) -> Path:
    """``<project>/.llmops``, created ignoring itself in git (the store and lock files live there)."""
    from llmops_cli.paths import STATE_DIR

    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# llmops state: content store, caches, indexes\n*\n")
    return state


def get_collection(client: Any, name: str) -> Any | None:
    """The collection ``name``, or None when it does not exist."""
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name, embedding_function=None)
    except NotFoundError:
        return None
    except ValueError as error:  # older clients report a missing collection as ValueError
        if "does not exist" in str(error):
            return None
        raise


def create_collection(client: Any, name: str, metadata: dict[str, str]) -> Any:
    """A new, empty collection (an old one of that name is dropped) with cosine distance."""
    if get_collection(client, name) is not None:
        client.delete_collection(name)
    return client.create_collection(
        name,
        configuration={"hnsw": {"space": COLLECTION_SPACE}},
        metadata=metadata,
        embedding_function=None,
    )


def collection_fingerprint(collection: Any) -> str | None:
    value = (collection.metadata or {}).get(FINGERPRINT_KEY)
    return value if isinstance(value, str) else None


def iter_metadatas(collection: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(chunk id, metadata) of every chunk, read in pages so big collections stay cheap."""
    offset = 0
    while True:
        page = collection.get(include=["metadatas"], limit=_PAGE, offset=offset)
        ids = page["ids"]
        yield from zip(ids, page["metadatas"] or [{}] * len(ids), strict=True)
        if len(ids) < _PAGE:
            return
        offset += len(ids)


def max_batch_size(client: Any) -> int:
    try:
        return max(1, int(client.get_max_batch_size()))
    except Exception:  # not every client (or server version) reports it
        return 1000
