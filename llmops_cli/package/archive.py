"""Reproducible ``.tar.gz`` writing, streaming reads, and safe extraction.

Byte-identical output for identical inputs: entries in a fixed order (``manifest.json`` first, so
``inspect`` reads it without decompressing the weights, then every other path sorted), one fixed
mtime for all of them, uid/gid 0 with empty owner names, fixed modes (0644, 0755 for scripts), PAX
format, and a gzip header with mtime 0 and no file name. Nothing about the machine or the moment of
the build reaches the archive.

Extraction (:func:`unpack`) checks every member itself (absolute paths, ``..``, links leaving the
target, devices, duplicates) and also passes tarfile's ``data`` filter where the interpreter has it
(3.12+, and backported to 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from llmops_cli.errors import UsageError, VersioningError

MANIFEST_NAME = "manifest.json"
_CHUNK = 1024 * 1024
# Interpreters without extraction filters have no FilterError; an empty tuple catches nothing.
_FILTER_ERROR: Any = getattr(tarfile, "FilterError", ())
ByteProgress = Callable[[int], None]  # called with the number of bytes just processed


class PackageIntegrityError(VersioningError):
    """A package archive is damaged, or does not match its manifest (exit code 4, like a corrupt store object)."""


class UnsafeArchiveError(PackageIntegrityError):
    """An archive member would land outside the target folder, or is not a plain file or folder."""


@dataclass(frozen=True)
class Entry:
    """One file to put in an archive: from disk (``source``) or generated (``data``)."""

    path: str  # posix path inside the archive
    source: Path | None = None
    data: bytes | None = None
    mode: int = 0o644

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.source is not None
        return self.source.stat().st_size

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.source is not None
        return open(self.source, "rb")


def sha256_entry(entry: Entry, on_bytes: ByteProgress | None = None) -> tuple[str, int]:
    """(hex sha256, size) of an entry's content."""
    digest, size = hashlib.sha256(), 0
    with entry.open() as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
            size += len(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest(), size


def archive_order(paths: list[str]) -> list[str]:
    """The manifest first, then every other path sorted (byte order of the UTF-8 names)."""
    rest = sorted((p for p in paths if p != MANIFEST_NAME), key=lambda p: p.encode("utf-8"))
    return ([MANIFEST_NAME] if MANIFEST_NAME in paths else []) + rest


def write_archive(
    entries: list[Entry],
    dest: Path,
    *,
    mtime: int,
    expected: dict[str, str] | None = None,
    compresslevel: int = 6,
    on_bytes: ByteProgress | None = None,
) -> None:
    """Write ``entries`` as a reproducible tar.gz at ``dest`` (through a temp file and a rename).

    ``expected`` maps paths to the sha256 computed earlier (the manifest's); a file whose content
    changed in between makes the build fail instead of shipping a manifest that lies.
    """
    by_path = {e.path: e for e in entries}
    if len(by_path) != len(entries):
        raise UsageError("two package files have the same path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            # filename="" and mtime=0: the gzip header carries neither the temp name nor the time.
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0)
            with gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for path in archive_order(list(by_path)):
                    _add(tar, by_path[path], mtime, (expected or {}).get(path), on_bytes)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a package is meant to be shared
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _add(tar: tarfile.TarFile, entry: Entry, mtime: int, expected: str | None, on_bytes: ByteProgress | None) -> None:
    info = tarfile.TarInfo(entry.path)
    info.size = entry.size
    info.mtime = mtime
    info.mode = entry.mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    with entry.open() as handle:
        hashing = _HashingReader(handle, on_bytes)
        tar.addfile(info, hashing)
    if hashing.size != info.size or (expected is not None and hashing.hexdigest() != expected):
        raise VersioningError(
            f"{entry.source or entry.path} changed while the package was being written",
            hint="Run the command again once nothing else writes to the project.",
        )


class _HashingReader(io.RawIOBase):
    """A file wrapper that hashes what tarfile reads through it."""

    def __init__(self, handle: IO[bytes], on_bytes: ByteProgress | None) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self._on_bytes = on_bytes
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        block = self._handle.read(size)
        self._digest.update(block)
        self.size += len(block)
        if self._on_bytes and block:
            self._on_bytes(len(block))
        return block

    def readable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


# -- reading ---------------------------------------------------------------------------------------


@dataclass
class Member:
    """What an archive member is, for checks and reports."""

    name: str
    kind: str  # file, dir, symlink, hardlink, device, fifo, other
    size: int
    link: str = ""


def member_kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr() or info.isblk():
        return "device"
    if info.isfifo():
        return "fifo"
    return "other"


def open_stream(archive: Path) -> tarfile.TarFile:
    """The archive opened for one forward pass (no seeking, so big archives stream)."""
    if not archive.is_file():
        raise UsageError(f"No package archive at {archive}.")
    try:
        return tarfile.open(archive, mode="r|gz")
    except (tarfile.ReadError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        raise PackageIntegrityError(f"{archive} is not a readable .tar.gz: {error}") from None


def iter_members(tar: tarfile.TarFile, archive: Path) -> Iterator[tarfile.TarInfo]:
    """Members in order; a damaged stream becomes a :class:`PackageIntegrityError`."""
    try:
        yield from tar
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        raise PackageIntegrityError(f"{archive} is damaged: {error}") from None


def hash_member(tar: tarfile.TarFile, info: tarfile.TarInfo, archive: Path) -> str:
    handle = tar.extractfile(info)
    if handle is None:
        return hashlib.sha256(b"").hexdigest()
    digest = hashlib.sha256()
    try:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        raise PackageIntegrityError(f"{archive} is damaged inside {info.name}: {error}") from None
    return digest.hexdigest()


def read_member_bytes(archive: Path, name: str, *, limit: int = 64 * 1024 * 1024) -> bytes | None:
    """The content of member ``name`` (the manifest comes first, so this is usually instant)."""
    with open_stream(archive) as tar:
        for info in iter_members(tar, archive):
            if info.name == name and info.isreg():
                if info.size > limit:
                    raise PackageIntegrityError(f"{archive}: {name} is implausibly large ({info.size} bytes)")
                handle = tar.extractfile(info)
                return handle.read() if handle else b""
    return None


# -- safety ----------------------------------------------------------------------------------------


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


def unpack(archive: Path, dest: Path) -> Path:
    """Extract a package into ``dest`` (created; it must not exist or be empty) and return it.

    Every member is checked before it is written; extraction goes to a temporary folder beside
    ``dest`` that is renamed into place only when the whole archive was safe, so a refused archive
    leaves nothing behind. Raises :class:`UnsafeArchiveError` (exit code 4).
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists and is not empty.", hint="Unpack into a new or empty folder.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
    try:
        _extract_all(archive, staging)
        os.chmod(staging, 0o755)  # mkdtemp made it private; the unpacked project is an ordinary folder
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _extract_all(archive: Path, target: Path) -> None:
    seen: set[str] = set()
    extract_options: dict[str, Any] = {}
    if hasattr(tarfile, "data_filter"):
        extract_options["filter"] = "data"
    with open_stream(archive) as tar:
        for info in iter_members(tar, archive):
            problem = member_problem(info)
            normalized = posixpath.normpath(info.name)
            if problem is None and normalized in seen and not info.isdir():
                problem = "appears twice (a later copy would replace a checked one)"
            if problem:
                raise UnsafeArchiveError(
                    f"refusing to unpack {archive}: member {info.name!r}: {problem}",
                    hint="The archive was not made by 'llmops package' or was tampered with; "
                    "'llmops package verify' shows what differs.",
                )
            seen.add(normalized)
            try:
                tar.extract(info, target, **extract_options)
            except _FILTER_ERROR as error:
                raise UnsafeArchiveError(f"refusing to unpack {archive}: {error}") from None
            except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as error:
                raise PackageIntegrityError(f"{archive} is damaged: {error}") from None
