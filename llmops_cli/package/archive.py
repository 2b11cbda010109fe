"""Reproducible ``.tar.gz`` writing, and streaming reads within limits.

Byte-identical output for identical inputs: entries in a fixed order (``manifest.json`` first, so
``inspect`` reads it without decompressing the weights, then every other path sorted), one fixed
mtime for all of them, uid/gid 0 with empty owner names, fixed modes (0644, 0755 for scripts), PAX
format, and a gzip header with mtime 0 and no file name. Nothing about the machine or the moment of
the build reaches the archive.

Streaming reads are bounded by :class:`ReadLimits`. Extraction is in
:mod:`llmops_cli.package.unpacking`, the member checks it shares with verify in
:mod:`llmops_cli.package.safety`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from llmops_cli.errors import UsageError, VersioningError

MANIFEST_NAME = "manifest.json"
CHUNK = 1024 * 1024  # bytes read at a time from files and archive members
ByteProgress = Callable[[int], None]  # bytes just processed; build.py sums them into (phase, done, total)


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
        for block in iter(lambda: handle.read(CHUNK), b""):
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
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        raise PackageIntegrityError(f"{archive} is damaged inside {info.name}: {error}") from None
    return digest.hexdigest()


def read_member_bytes(archive: Path, name: str, *, limit: int | None = None, first: bool = False) -> bytes | None:
    """The content of member ``name`` (the manifest comes first, so this is usually instant).

    With ``first``, only the first member is looked at (a package's manifest is always first).
    """
    limit = DEFAULT_LIMITS.max_manifest_bytes if limit is None else limit
    budget = Budget(archive, DEFAULT_LIMITS)
    with open_stream(archive) as tar:
        for info in iter_members(tar, archive):
            budget.charge(info)
            if first and info.name != name:
                return None
            if info.name == name and info.isreg():
                if info.size > limit:
                    raise PackageLimitError(
                        f"{archive}: {name} is {human_bytes(info.size)}, more than the {human_bytes(limit)} "
                        "a package may have; it was not read",
                        hint="A real manifest is a few KB; if you trust this archive, raise --max-manifest-bytes.",
                    )
                handle = tar.extractfile(info)
                return handle.read() if handle else b""
    return None


# -- limits ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadLimits:
    """How much reading a package may cost; every reader stops (exit code 4) before going past one.

    The defaults fit real bundles (the largest open models in 16-bit, a few hundred files) with
    room to spare, and stop decompression bombs and archives of countless tiny files early.
    """

    max_manifest_bytes: int = 64 * 1024**2  # a manifest lists files: a few KB in practice
    max_total_bytes: int = 1024**4  # 1 TiB of unpacked content
    max_files: int = 100_000


DEFAULT_LIMITS = ReadLimits()


class PackageLimitError(PackageIntegrityError):
    """Reading the archive would go past a :class:`ReadLimits` bound (exit code 4)."""


def human_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


class Budget:
    """Counts members and declared bytes of an archive as it streams, against ``limits``."""

    def __init__(self, archive: Path, limits: ReadLimits) -> None:
        self.archive, self.limits = archive, limits
        self.files = 0
        self.bytes = 0

    def charge(self, info: tarfile.TarInfo) -> None:
        self.files += 1
        self.bytes += max(info.size, 0)
        if self.files > self.limits.max_files:
            raise PackageLimitError(
                f"refusing to read {self.archive}: it has more than {self.limits.max_files:,} entries",
                hint="A package holds a few hundred files; if you trust this archive, raise --max-files.",
            )
        if self.bytes > self.limits.max_total_bytes:
            raise PackageLimitError(
                f"refusing to read {self.archive}: it unpacks to more than "
                f"{human_bytes(self.limits.max_total_bytes)} (stopped at {info.name!r})",
                hint="This looks like a decompression bomb; if you trust this archive, raise --max-bytes.",
            )
