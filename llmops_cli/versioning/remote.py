"""``llmops push`` / ``llmops pull``: copy store objects to and from a directory or fsspec URL.

The remote mirrors the local layout (``<remote>/objects/ab/cdef…``); uploads go to a temporary
name first and are renamed, downloads are hash-checked before they enter the local store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.errors import UnavailableError, UsageError
from llmops_cli.versioning.store import ContentStore

Progress = Callable[[str, int], None]  # (sha, bytes) after each object


@dataclass
class TransferResult:
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    bytes: int = 0


def open_remote(url: str | None) -> tuple[Any, str]:
    if not url:
        raise UsageError(
            "no remote configured",
            hint="Set storage.remote in llmops.yaml (a directory or fsspec URL) or pass --remote.",
        )
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"cannot open remote '{url}': {exc}") from None
    return fs, root.rstrip("/")


def _remote_objects(fs: Any, root: str) -> set[str]:
    base = f"{root}/objects"
    if not fs.exists(base):
        return set()
    found = set()
    for path in fs.find(base):
        parts = path.rstrip("/").split("/")
        if len(parts) >= 2 and len(parts[-2]) == 2 and not parts[-1].startswith(".tmp-"):
            found.add(parts[-2] + parts[-1])
    return found


def push(
    store: ContentStore, url: str | None, objects: dict[str, int], progress: Progress | None = None
) -> TransferResult:
    """Upload the local ``objects`` (``sha -> size``) the remote lacks."""
    fs, root = open_remote(url)
    present = _remote_objects(fs, root)
    result = TransferResult()
    for sha, size in sorted(objects.items()):
        if sha in present:
            result.skipped.append(sha)
            continue
        if not store.has(sha):
            result.missing.append(sha)
            continue
        target = f"{root}/objects/{sha[:2]}/{sha[2:]}"
        tmp = f"{root}/objects/{sha[:2]}/.tmp-{uuid.uuid4().hex}"
        fs.makedirs(f"{root}/objects/{sha[:2]}", exist_ok=True)
        fs.put_file(str(store.object_path(sha)), tmp)
        fs.mv(tmp, target)
        result.copied.append(sha)
        result.bytes += size
        if progress:
            progress(sha, size)
    return result


def pull(
    store: ContentStore, url: str | None, objects: dict[str, int], progress: Progress | None = None
) -> TransferResult:
    """Download the ``objects`` the local store lacks; each is verified against its sha256."""
    fs, root = open_remote(url)
    result = TransferResult()
    wanted = {sha: size for sha, size in objects.items() if not store.has(sha)}
    result.skipped = sorted(set(objects) - set(wanted))
    present = _remote_objects(fs, root) if wanted else set()
    for sha, size in sorted(wanted.items()):
        if sha not in present:
            result.missing.append(sha)
            continue
        tmp = store.objects / sha[:2] / f".tmp-{uuid.uuid4().hex}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            fs.get_file(f"{root}/objects/{sha[:2]}/{sha[2:]}", str(tmp))
            store.put_bytes_from(sha, tmp)
        finally:
            if tmp.exists():
                tmp.unlink()
        result.copied.append(sha)
        result.bytes += size
        if progress:
            progress(sha, size)
    if result.missing:
        raise UnavailableError(
            f"{len(result.missing)} object(s) are on neither the local store nor the remote {url}: "
            + ", ".join(s[:12] for s in result.missing[:5]),
            hint="Run 'llmops push' on the machine that produced them.",
        )
    return result
