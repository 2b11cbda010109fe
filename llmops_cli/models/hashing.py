"""sha256 of large weight files, remembered across runs.

Hashing a multi-GB checkpoint takes seconds, and lineage asks for it on every run, so results are
kept in ``$LLMOPS_HOME/file-hashes.json`` keyed by absolute path, size and mtime: a file that is
rewritten gets a new mtime and is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from llmops_cli.paths import atomic_write_text, llmops_home

_CHUNK = 1024 * 1024


def _cache_file() -> Path:
    return llmops_home() / "file-hashes.json"


def _stamp(path: Path) -> tuple[str, dict[str, int]]:
    st = path.stat()
    return str(path.resolve()), {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _load() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or corrupt: it is only a cache
    return data if isinstance(data, dict) else {}


def cached_file_sha256(path: Path) -> str | None:
    """The remembered hex sha256 of ``path`` if it has not changed since; never reads the file."""
    try:
        key, stamp = _stamp(path)
    except OSError:
        return None
    entry = _load().get(key)
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()):
        digest = entry.get("sha256")
        return digest if isinstance(digest, str) else None
    return None


def file_sha256(path: Path) -> str:
    """Hex sha256 of ``path``, computed once per (path, size, mtime)."""
    known = cached_file_sha256(path)
    if known is not None:
        return known
    key, stamp = _stamp(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    _remember(key, {**stamp, "sha256": value})
    return value


def _remember(key: str, entry: dict[str, object]) -> None:
    data = _load()  # re-read just before writing: a parallel run may have added entries
    data[key] = entry
    with contextlib.suppress(OSError):  # a read-only home only costs a re-hash next time
        atomic_write_text(_cache_file(), json.dumps(data, indent=1, sort_keys=True))


def text_sha256(*parts: str) -> str:
    """``sha256:`` of parts joined with newlines (a newline cannot occur in a URL or model id)."""
    return "sha256:" + hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
