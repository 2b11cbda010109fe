"""What a package archive may hold: the member checks unpack and verify share, and the manifest's file list."""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path
from typing import Any

from llmops_cli.package.archive import (
    MANIFEST_NAME,
    PackageIntegrityError,
    PackageLimitError,
    ReadLimits,
    human_bytes,
    member_kind,
)


def member_problem(info: tarfile.TarInfo) -> str | None:
    """Why extracting ``info`` would be unsafe, or None when it is a plain, contained file or folder."""
    name = info.name
    if not name or "\x00" in name:
        return "empty or invalid name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or posixpath.isabs(name):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "path contains '..'"
    kind = member_kind(info)
    if kind in ("device", "fifo", "other"):
        return f"{kind} entries are not allowed"
    if kind in ("symlink", "hardlink"):
        target = info.linkname
        if not target or posixpath.isabs(target) or target.startswith("\\"):
            return f"{kind} to an absolute path ({target!r})"
        # symlinks resolve from the link's folder, hardlinks from the archive root
        base = posixpath.dirname(name) if kind == "symlink" else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            return f"{kind} points outside the target folder ({target!r})"
    return None


def disk_problem(info: tarfile.TarInfo, root: Path) -> str | None:
    """Why ``info`` would land outside ``root`` given what is already on disk (links followed), or None.

    The lexical check in :func:`member_problem` cannot see a chain of links: ``a -> .`` then
    ``a/b -> ..`` are each harmless on paper, yet ``a/b/x`` is outside. Resolving every path
    against the extracted tree catches that on any Python, with or without tarfile's filters.
    """
    base = os.path.realpath(root)
    name = posixpath.normpath(info.name)
    parent = os.path.realpath(os.path.join(base, posixpath.dirname(name)))
    if not _inside(parent, base):
        return "its folder is a link that leads outside the target folder"
    here = os.path.join(parent, posixpath.basename(name))
    if os.path.islink(here) or (os.path.lexists(here) and not (info.isdir() and os.path.isdir(here))):
        return "it would replace an entry already unpacked"
    if info.issym():
        pointed = os.path.realpath(os.path.join(parent, info.linkname))
    elif info.islnk():
        pointed = os.path.realpath(os.path.join(base, info.linkname))
    else:
        return None
    if not _inside(pointed, base):
        return f"{member_kind(info)} points outside the target folder once links are followed ({info.linkname!r})"
    return None


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def parse_manifest_files(manifest: Any, archive: Path, limits: ReadLimits) -> dict[str, tuple[str, int]]:
    """``path -> (sha256, size)`` from a manifest, every field checked, limits applied to its totals."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        raise PackageIntegrityError(f"{archive}: {MANIFEST_NAME} has no 'files' list")
    if len(files) > limits.max_files:
        raise PackageLimitError(
            f"refusing to read {archive}: its manifest lists {len(files):,} files, more than {limits.max_files:,}",
            hint="If you trust this archive, raise --max-files.",
        )
    listed: dict[str, tuple[str, int]] = {}
    for entry in files:
        path, sha, size = (entry.get(k) for k in ("path", "sha256", "size")) if isinstance(entry, dict) else (None,) * 3
        fake = tarfile.TarInfo(str(path))
        if (
            not isinstance(path, str) or member_problem(fake) or path == MANIFEST_NAME
            or not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)
            or isinstance(size, bool) or not isinstance(size, int) or size < 0
        ):  # fmt: skip
            raise PackageIntegrityError(f"{archive}: {MANIFEST_NAME} has an invalid file entry: {str(entry)[:120]}")
        listed[posixpath.normpath(path)] = (sha, size)
    total = sum(size for _sha, size in listed.values())
    if total > limits.max_total_bytes:
        raise PackageLimitError(
            f"refusing to read {archive}: its manifest declares {human_bytes(total)}, "
            f"more than {human_bytes(limits.max_total_bytes)}",
            hint="If you trust this archive, raise --max-bytes.",
        )
    return listed
