"""Content-addressed object store (sha256) under ``.llmops/store`` and the pointer files for it.

Objects are immutable: written once through a temporary file and renamed into
``objects/<first two hex>/<rest>``, then made read-only.

Nothing read from a pointer file, a manifest or a remote is trusted: a digest must be exactly 64
lowercase hex digits before it becomes part of a path, and every copy into or out of the store is
hashed while it streams (no second read) and refused when the bytes do not match their name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from llmops_cli.errors import UnavailableError, VersioningError

POINTER_SUFFIX = ".ptr"
_CHUNK = 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
QUARANTINE = "corrupt"  # folder under the store root that damaged objects are moved to


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def is_digest(value: object) -> bool:
    """True for a sha256 hex digest as llmops writes it (64 lowercase hex digits)."""
    return isinstance(value, str) and _HEX64.match(value) is not None


def check_digest(value: object, *, origin: str) -> str:
    """``value`` when it is a sha256 hex digest; a :class:`VersioningError` naming ``origin`` otherwise."""
    if not is_digest(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise VersioningError(
            f"{origin}: sha256 {shown} is not a sha256 digest (64 hex digits)",
            hint="The file was edited by hand or crafted; restore it with 'git checkout' or re-register the artifact.",
        )
    return str(value)


def copy_hashed(source: IO[bytes], dest: IO[bytes]) -> tuple[str, int]:
    """Copy ``source`` to ``dest`` in chunks, returning (sha256 hex, bytes) of what was copied."""
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: source.read(_CHUNK), b""):
        digest.update(block)
        dest.write(block)
        size += len(block)
    return digest.hexdigest(), size


class CorruptObjectError(VersioningError):
    """A store object's bytes do not hash to its name (exit code 4)."""

    def __init__(self, sha: str, actual: str, where: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"object {sha[:12]}… {where} is corrupt (its content hashes to {actual[:12]}…)",
            hint=hint,
        )
        self.sha = sha
        self.actual = actual


@dataclass(frozen=True)
class Pointer:
    """What is committed in place of a large file: its hash, size and name."""

    sha256: str
    size: int
    path: str

    def dumps(self) -> str:
        body = {"llmops-pointer": 1, "path": self.path, "sha256": self.sha256, "size": self.size}
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def loads(cls, text: str, *, origin: str = "pointer") -> Pointer:
        try:
            body = json.loads(text)
            sha, size, path = body["sha256"], body["size"], body["path"]
        except (ValueError, KeyError, TypeError) as exc:
            raise VersioningError(f"{origin}: not a valid llmops pointer file ({exc})") from None
        check_digest(sha, origin=origin)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise VersioningError(f"{origin}: size {size!r} is not a byte count")
        # The pointer names the file beside it: a bare file name, never a path.
        if (
            not isinstance(path, str)
            or not path
            or "/" in path
            or "\\" in path
            or path in (".", "..")
            or "\x00" in path
        ):
            raise VersioningError(f"{origin}: path {path!r} is not a plain file name")
        return cls(sha256=sha, size=size, path=path)


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"

    def object_path(self, sha: str) -> Path:
        check_digest(sha, origin="content store")
        return self.objects / sha[:2] / sha[2:]

    def has(self, sha: str) -> bool:
        return self.object_path(sha).is_file()

    def put(self, source: Path, sha: str | None = None) -> str:
        """Copy ``source`` into the store (no-op if already there); returns its sha256.

        The copy is hashed as it is written; when ``sha`` is given and the bytes differ (the file
        changed since it was hashed), nothing is stored.
        """
        if sha is not None:
            check_digest(sha, origin=str(source))
            if self.has(sha):
                return sha
        tmp = self._tmp_path()
        try:
            with open(source, "rb") as src, open(tmp, "wb") as out:
                actual, _size = copy_hashed(src, out)
            if sha is not None and actual != sha:
                raise VersioningError(f"{source} changed while it was being stored; try again")
            self._adopt(tmp, actual)
        finally:
            tmp.unlink(missing_ok=True)
        return actual

    def put_bytes_from(self, sha: str, source: Path) -> None:
        """Adopt a downloaded file as object ``sha`` after checking its hash."""
        actual = sha256_file(source)
        if actual != sha:
            raise CorruptObjectError(sha, actual, "from the remote")
        self._adopt(source, sha)

    def open_verified_writer(self, sha: str) -> _VerifiedWriter:
        """A file to stream object ``sha`` into; on ``commit()`` it enters the store only if it hashes right."""
        check_digest(sha, origin="content store")
        return _VerifiedWriter(self, sha, self._tmp_path())

    def copy_out(self, sha: str, dest: Path) -> None:
        """Write object ``sha`` to ``dest`` (a writable copy), verifying it on the way.

        A damaged object is moved out of the store (to ``corrupt/``) so that ``llmops pull`` fetches
        a good copy, and nothing is written to ``dest``.
        """
        src = self.object_path(sha)
        if not src.is_file():
            raise self._missing(sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with open(src, "rb") as handle, open(tmp, "wb") as out:
                actual, _size = copy_hashed(handle, out)
            if actual != sha:
                raise self.quarantine(sha, actual)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def read_verified(self, sha: str) -> bytes:
        """The content of object ``sha``, hashed as it is read; a damaged object is moved aside (see copy_out)."""
        src = self.object_path(sha)
        if not src.is_file():
            raise self._missing(sha)
        data = src.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise self.quarantine(sha, actual)
        return data

    def verified_path(self, sha: str) -> Path:
        """The path of object ``sha`` once re-hashed (for readers that need a file); damaged: moved aside."""
        if not self.has(sha):
            raise self._missing(sha)
        actual = self.verify(sha)
        if actual != sha:
            raise self.quarantine(sha, actual)
        return self.object_path(sha)

    def verify(self, sha: str) -> str:
        """The actual sha256 of stored object ``sha`` (equal to ``sha`` when it is intact)."""
        return sha256_file(self.object_path(sha))

    def quarantine(self, sha: str, actual: str) -> CorruptObjectError:
        """Move damaged object ``sha`` aside and return the error to raise about it."""
        src = self.object_path(sha)
        aside = self.root / QUARANTINE / f"{sha}-{uuid.uuid4().hex[:8]}"
        try:
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, aside)
            moved = f" It was moved to {aside}."
        except OSError:
            moved = ""
        return CorruptObjectError(
            sha, actual, f"in the local store ({self.root})",
            hint=f"Run 'llmops pull' to fetch a good copy from the remote.{moved}",
        )  # fmt: skip

    def iter_objects(self) -> Iterator[str]:
        if not self.objects.is_dir():
            return
        for prefix in sorted(self.objects.iterdir()):
            if prefix.is_dir() and len(prefix.name) == 2:
                for obj in sorted(prefix.iterdir()):
                    if is_digest(prefix.name + obj.name):
                        yield prefix.name + obj.name

    # -- internals -------------------------------------------------------------------------------
    def _missing(self, sha: str) -> UnavailableError:
        return UnavailableError(
            f"object {sha[:12]}… is not in the local store ({self.root})",
            hint="Run 'llmops pull' to fetch it from the remote.",
        )

    def _tmp_path(self) -> Path:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tmp_dir / f".tmp-{uuid.uuid4().hex}"

    def _adopt(self, tmp: Path, sha: str) -> None:
        target = self.object_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)


class _VerifiedWriter:
    """Write side of a verified copy into the store (used by ``pull``)."""

    def __init__(self, store: ContentStore, sha: str, tmp: Path) -> None:
        self.store, self.sha, self.tmp = store, sha, tmp
        self.handle: IO[bytes] = open(tmp, "wb")  # noqa: SIM115 - closed in commit()/discard()
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, block: bytes) -> int:
        self.digest.update(block)
        self.size += len(block)
        return self.handle.write(block)

    def commit(self) -> None:
        self.handle.close()
        actual = self.digest.hexdigest()
        if actual != self.sha:
            self.discard()
            raise CorruptObjectError(self.sha, actual, "from the remote")
        self.store._adopt(self.tmp, self.sha)

    def discard(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)
