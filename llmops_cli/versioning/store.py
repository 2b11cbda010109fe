"""Content-addressed object store (sha256) under ``.llmops/store`` and the pointer files for it.

Objects are immutable: written once through a temporary file and renamed into
``objects/<first two hex>/<rest>``, then made read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.errors import UnavailableError, VersioningError

POINTER_SUFFIX = ".ptr"
_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


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
            return cls(sha256=str(body["sha256"]), size=int(body["size"]), path=str(body["path"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise VersioningError(f"{origin}: not a valid llmops pointer file ({exc})") from None


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"

    def object_path(self, sha: str) -> Path:
        return self.objects / sha[:2] / sha[2:]

    def has(self, sha: str) -> bool:
        return self.object_path(sha).is_file()

    def put(self, source: Path, sha: str | None = None) -> str:
        """Copy ``source`` into the store (no-op if already there); returns its sha256."""
        sha = sha or sha256_file(source)
        target = self.object_path(sha)
        if target.is_file():
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            shutil.copyfile(source, tmp)
            if sha256_file(tmp) != sha:
                raise VersioningError(f"{source} changed while it was being stored; try again")
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return sha

    def put_bytes_from(self, sha: str, source: Path) -> None:
        """Adopt a downloaded file as object ``sha`` after checking its hash."""
        actual = sha256_file(source)
        if actual != sha:
            raise VersioningError(f"object {sha[:12]} is corrupt (its content hashes to {actual[:12]})")
        target = self.object_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(source, 0o444)
        os.replace(source, target)

    def copy_out(self, sha: str, dest: Path) -> None:
        """Write object ``sha`` to ``dest`` (a writable copy)."""
        src = self.object_path(sha)
        if not src.is_file():
            raise UnavailableError(
                f"object {sha[:12]}… is not in the local store ({self.root})",
                hint="Run 'llmops pull' to fetch it from the remote.",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o644)

    def iter_objects(self) -> Iterator[str]:
        if not self.objects.is_dir():
            return
        for prefix in sorted(self.objects.iterdir()):
            if prefix.is_dir() and len(prefix.name) == 2:
                for obj in sorted(prefix.iterdir()):
                    if not obj.name.startswith(".tmp-"):
                        yield prefix.name + obj.name
