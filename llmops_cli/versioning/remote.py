"""``llmops push`` / ``llmops pull``: copy store objects to and from a directory or fsspec URL.

The remote mirrors the local layout (``<remote>/objects/ab/cdef…``). Every object is hashed while
it streams, in both directions: an upload goes to a temporary name and is renamed only when the
local bytes matched their name; a download enters the local store only when it hashes right. A
transfer does not stop at the first bad object: it moves on, then reports every one of them
(:class:`TransferFailed`, exit code 4).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.errors import UnavailableError, UsageError, VersioningError
from llmops_cli.versioning.store import _CHUNK, ContentStore, CorruptObjectError, is_digest

Progress = Callable[[str, int], None]  # (sha, bytes) after each object; the command sums the bytes itself


@dataclass
class TransferResult:
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: dict[str, str] = field(default_factory=dict)  # sha -> what its bytes actually hash to
    failed: dict[str, str] = field(default_factory=dict)  # sha -> why the copy failed (I/O)
    bytes: int = 0


class TransferFailed(VersioningError):
    """Some objects could not be transferred intact; ``result`` says which (exit code 4)."""

    def __init__(self, message: str, result: TransferResult, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


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
        if len(parts) >= 2 and len(parts[-2]) == 2 and is_digest(parts[-2] + parts[-1]):
            found.add(parts[-2] + parts[-1])
    return found


def _check_names(objects: dict[str, int]) -> None:
    bad = [sha for sha in objects if not is_digest(sha)]
    if bad:
        raise VersioningError(
            f"{len(bad)} referenced object name(s) are not sha256 digests: " + ", ".join(repr(b)[:40] for b in bad[:5]),
            hint="A pointer or manifest was edited by hand or crafted; 'git log -p' on it shows who changed it.",
        )


def push(
    store: ContentStore, url: str | None, objects: dict[str, int], progress: Progress | None = None
) -> TransferResult:
    """Upload the local ``objects`` (``sha -> size``) the remote lacks, each verified as it streams."""
    _check_names(objects)
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
        try:
            actual, sent = _upload(fs, store, sha, tmp)
        except OSError as error:
            _remove_quietly(fs, tmp)
            result.failed[sha] = str(error)
            continue
        if actual != sha:
            _remove_quietly(fs, tmp)
            store.quarantine(sha, actual)
            result.corrupt[sha] = actual
            continue
        fs.mv(tmp, target)
        result.copied.append(sha)
        result.bytes += sent
        if progress:
            progress(sha, size)
    if result.corrupt or result.failed:
        raise _failure("push", url, result, hint="Corrupt objects were moved aside; run 'llmops pull' to fetch good "
                       "copies (or re-create the artifacts), then push again.")  # fmt: skip
    return result


def _upload(fs: Any, store: ContentStore, sha: str, tmp: str) -> tuple[str, int]:
    import hashlib

    digest, size = hashlib.sha256(), 0
    with open(store.object_path(sha), "rb") as src, fs.open(tmp, "wb") as out:
        for block in iter(lambda: src.read(_CHUNK), b""):
            digest.update(block)
            out.write(block)
            size += len(block)
    return digest.hexdigest(), size


def _remove_quietly(fs: Any, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except OSError:
        pass


def pull(
    store: ContentStore, url: str | None, objects: dict[str, int], progress: Progress | None = None
) -> TransferResult:
    """Download the ``objects`` the local store lacks; each is verified against its sha256.

    Every wanted object is tried; then corrupt or unreadable ones raise :class:`TransferFailed`
    (exit 4) naming all of them, and objects on neither side raise :class:`UnavailableError`.
    """
    _check_names(objects)
    fs, root = open_remote(url)
    result = TransferResult()
    wanted = {sha: size for sha, size in objects.items() if not store.has(sha)}
    result.skipped = sorted(set(objects) - set(wanted))
    present = _remote_objects(fs, root) if wanted else set()
    for sha, size in sorted(wanted.items()):
        if sha not in present:
            result.missing.append(sha)
            continue
        writer = store.open_verified_writer(sha)
        try:
            _download(fs, f"{root}/objects/{sha[:2]}/{sha[2:]}", writer)
            writer.commit()
        except CorruptObjectError as error:
            result.corrupt[sha] = error.actual
            continue
        except OSError as error:
            writer.discard()
            result.failed[sha] = str(error)
            continue
        except BaseException:
            writer.discard()
            raise
        result.copied.append(sha)
        result.bytes += writer.size
        if progress:
            progress(sha, size)
    if result.corrupt or result.failed:
        raise _failure("pull", url, result, hint="Nothing damaged entered the local store. Push good copies from "
                       "the machine that made them ('llmops push'), then pull again.")  # fmt: skip
    if result.missing:
        raise UnavailableError(
            f"{len(result.missing)} object(s) are on neither the local store nor the remote {url}: "
            + ", ".join(s[:12] for s in result.missing[:5]),
            hint="Run 'llmops push' on the machine that produced them.",
        )
    return result


def _download(fs: Any, path: str, writer: Any) -> None:
    with fs.open(path, "rb") as src:
        while block := src.read(_CHUNK):
            writer.write(block)


def _failure(direction: str, url: str | None, result: TransferResult, *, hint: str) -> TransferFailed:
    where = "from" if direction == "pull" else "to"
    parts = [f"{sha[:12]}… is corrupt (hashes to {actual[:12]}…)" for sha, actual in sorted(result.corrupt.items())]
    parts += [f"{sha[:12]}… could not be copied ({why})" for sha, why in sorted(result.failed.items())]
    bad = len(result.corrupt) + len(result.failed)
    summary = f"{direction} {where} {url}: {bad} object(s) failed verification or copy; {len(result.copied)} copied"
    if result.missing:
        summary += f"; {len(result.missing)} " + ("on neither side" if direction == "pull" else "missing locally")
    return TransferFailed(summary + ": " + "; ".join(parts), result, hint=hint)
