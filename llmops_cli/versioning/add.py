"""``llmops add PATH --kind KIND --name NAME``: version any file or folder, like ``dvc add``.

The file (or every file under the folder) is registered as ``KIND/NAME/vN`` through the artifact
registry, so it gets what every other artifact gets: a copy in ``artifacts/KIND/NAME/``, large
files in the content store behind committed ``.ptr`` pointers, a commit with trailers, a tag, and
lineage (``--input``). An unchanged re-run decides to reuse the latest version *before* copying
anything: the files are hashed through the stat-keyed :class:`HashCache` (a file already hashed
and untouched since is not even read), and compared with the latest version's manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.errors import UsageError
from llmops_cli.versioning.artifacts import KINDS, MANIFEST, ArtifactRef, ArtifactRegistry, ArtifactVersion, Input
from llmops_cli.versioning.hashcache import HashCache
from llmops_cli.versioning.store import POINTER_SUFFIX

_SKIPPED_DIRS = {".git", ".llmops", "__pycache__", ".dvc"}


@dataclass
class AddResult:
    version: ArtifactVersion
    reused: bool  # the latest version already had exactly these files (and inputs): nothing registered
    files: int
    bytes: int
    stored: int  # files kept in the content store (above the size threshold)

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.version.key,
            "version": self.version.version,
            "tag": self.version.tag,
            "commit": self.version.commit,
            "reused": self.reused,
            "files": self.files,
            "bytes": self.bytes,
            "stored": self.stored,
        }


def collect_files(path: Path, own_folder: Path) -> dict[str, Path]:
    """``relative path -> file`` for a file (its name) or a folder (every file under it, sorted)."""
    if not path.exists():
        raise UsageError(f"{path} does not exist", hint="Give the file or folder to version.")
    if path.is_file():
        return {path.name: path}
    if not path.is_dir():
        raise UsageError(f"{path} is not a regular file or folder")
    resolved, own = path.resolve(), own_folder.resolve()
    if resolved != own and own.is_relative_to(resolved):
        raise UsageError(
            f"{path} contains the artifact's own folder {own}",
            hint="Add a folder that does not hold the artifacts directory (e.g. models/my-model, not the project).",
        )
    in_place = resolved == own  # re-adding the artifact's folder after editing it: skip our own files
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        here = Path(dirpath)
        for d in list(dirnames):
            if (here / d).is_symlink():
                raise UsageError(
                    f"{here / d} is a symbolic link to a folder; llmops add does not follow those",
                    hint="Add the folder it points to, or copy it in.",
                )
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS)
        for name in sorted(filenames):
            full = here / name
            rel = full.relative_to(path).as_posix()
            if in_place and (rel in (MANIFEST, ".gitignore") or rel.endswith(POINTER_SUFFIX)):
                continue
            if not full.is_file():  # a dangling link, a socket, a device
                raise UsageError(f"{full} is not a regular file (or a link to one)")
            files[rel] = full
    if not files:
        raise UsageError(f"{path} holds no files to version")
    return files


def resolve_input(registry: ArtifactRegistry, text: str, hashes: HashCache) -> Input:
    """``--input``: a registered artifact (``KIND/NAME[@vN]``, hashed by its manifest) or a path."""
    head = text.split("/", 1)[0]
    if "/" in text and head in KINDS and not Path(text).exists():
        version = registry.get(ArtifactRef.parse(text))
        raw = registry.git.show_file(version.commit, registry.manifest_path(version.kind, version.name)) or ""
        return Input(f"{version.key}@v{version.version}", "sha256:" + hashlib.sha256(raw.encode()).hexdigest())
    path = Path(text)
    if not path.exists():
        raise UsageError(
            f"input '{text}' is neither a registered artifact (KIND/NAME[@vN]) nor an existing path",
            hint="'llmops log' lists the registered artifacts.",
        )
    files = collect_files(path, registry.folder("file", "-"))
    if path.is_file():
        return Input(text, "sha256:" + hashes.sha256(path))
    listing = "".join(f"{rel} {hashes.sha256(src)}\n" for rel, src in sorted(files.items()))
    return Input(text, "sha256:" + hashlib.sha256(listing.encode()).hexdigest())


def add_path(
    registry: ArtifactRegistry,
    path: Path,
    kind: str,
    name: str,
    *,
    inputs: list[str] | None = None,
    message: str | None = None,
) -> AddResult:
    """Register ``path`` as ``kind/name`` (a new version), or reuse the latest when nothing changed."""
    if kind not in KINDS:
        raise UsageError(f"unknown artifact kind '{kind}'", hint=f"Use one of: {', '.join(KINDS)}.")
    ArtifactRef.parse(f"{kind}/{name}")  # a clear error for a bad name before any work
    folder = registry.folder(kind, name)
    files = collect_files(path, folder)
    hashes = HashCache(registry.state)
    try:
        lineage = [resolve_input(registry, text, hashes) for text in inputs or []]
        total = sum(src.stat().st_size for src in files.values())
        latest = registry.versions(ArtifactRef(kind, name))
        if latest:
            previous = latest[-1]
            previous.manifest = registry.read_manifest(previous)
            if _same(previous.manifest, files, lineage, hashes):
                _restore_missing(folder, files, previous.manifest)
                stored = sum(1 for f in previous.manifest.get("files", []) if f.get("stored"))
                return AddResult(previous, True, len(files), total, stored)
        where = _shown(registry, path)
        version = registry.register(
            kind,
            name,
            files,
            inputs=lineage,
            params={"source": where},
            metrics={"files": len(files), "bytes": total},
            summary=message or f"llmops add {where}: {len(files)} file(s), {total} bytes",
        )
        for entry in version.manifest.get("files", []):  # the sources were just read: remember their hashes
            source = files.get(entry["path"])
            if source is not None:
                hashes.remember(source, entry["sha256"])
        stored = sum(1 for f in version.manifest.get("files", []) if f.get("stored"))
        return AddResult(version, False, len(files), total, stored)
    finally:
        hashes.close()


def _same(manifest: dict[str, Any], files: dict[str, Path], lineage: list[Input], hashes: HashCache) -> bool:
    registered = {str(f.get("path")): (f.get("sha256"), f.get("size")) for f in manifest.get("files", [])}
    if set(registered) != set(files):
        return False
    if [{"ref": i.ref, "hash": i.hash} for i in lineage] != manifest.get("inputs", []):
        return False
    for rel, source in files.items():  # sizes first: a changed size needs no hash
        if registered[rel][1] != source.stat().st_size:
            return False
    return all(registered[rel][0] == hashes.sha256(source) for rel, source in files.items())


def _restore_missing(folder: Path, files: dict[str, Path], manifest: dict[str, Any]) -> None:
    """A reused version whose work-tree copy is gone (a fresh clone): copy the files back in."""
    for entry in manifest.get("files", []):
        dest = folder / str(entry["path"])
        source = files.get(str(entry["path"]))
        if source is not None and not dest.exists() and source.resolve() != dest.resolve():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)


def _shown(registry: ArtifactRegistry, path: Path) -> str:
    resolved = path.resolve()
    if resolved.is_relative_to(registry.project_root):
        return resolved.relative_to(registry.project_root).as_posix() or "."
    return str(resolved)
