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

import contextlib
import glob
import gzip
import hashlib
import io
import json
import os
import posixpath
import shutil
import signal
import tarfile
import tempfile
import threading
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


# -- unpacking -------------------------------------------------------------------------------------

_STAGING = ".unpack-"


def unpack(archive: Path, dest: Path, *, verify: bool = True, limits: ReadLimits = DEFAULT_LIMITS) -> Path:
    """Extract a package into ``dest`` (created; it must not exist or be empty) and return it.

    Every member is checked before it is written (lexically and against what is already on
    disk, with :class:`ReadLimits` enforced); with ``verify`` (the default), the archive must
    start with its manifest and every file must match it (size, then sha256 as it is written),
    so verification and extraction are one pass. Extraction goes to a staging folder beside
    ``dest`` that is renamed into place only when the whole archive was good; it is removed on
    any exit, SIGTERM included (a staging folder left by a SIGKILL is removed by the next unpack
    beside it). Raises :class:`PackageIntegrityError` / :class:`UnsafeArchiveError` (exit code 4).
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists and is not empty.", hint="Unpack into a new or empty folder.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep_dead_staging(dest)
    with _terminate_raises():
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}{_STAGING}{os.getpid()}-", dir=dest.parent))
        try:
            if verify:
                _extract_verified(archive, staging, limits)
            else:
                _extract_all(archive, staging, limits)
            os.chmod(staging, 0o755)  # mkdtemp made it private; the unpacked project is an ordinary folder
            if dest.exists():
                dest.rmdir()
            os.replace(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


@contextlib.contextmanager
def _terminate_raises() -> Iterator[None]:
    """Turn SIGTERM into an exception for the duration, so ``finally`` blocks clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sweep_dead_staging(dest: Path) -> None:
    """Remove staging folders beside ``dest`` whose unpacking process no longer exists."""
    for entry in dest.parent.glob(f".{glob.escape(dest.name)}{_STAGING}*"):
        pid = entry.name[len(dest.name) + 1 + len(_STAGING) :].split("-", 1)[0]
        if entry.is_dir() and not entry.is_symlink() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _refuse(archive: Path, info: tarfile.TarInfo, problem: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to unpack {archive}: member {info.name!r}: {problem}",
        hint="The archive was not made by 'llmops package' or was tampered with; "
        "'llmops package verify' shows what differs.",
    )


def _extract_all(archive: Path, target: Path, limits: ReadLimits) -> None:
    seen: set[str] = set()
    budget = Budget(archive, limits)
    extract_options: dict[str, Any] = {}
    if hasattr(tarfile, "data_filter"):
        extract_options["filter"] = "data"
    with open_stream(archive) as tar:
        for info in iter_members(tar, archive):
            budget.charge(info)
            problem = member_problem(info)
            normalized = posixpath.normpath(info.name)
            if problem is None and normalized in seen and not info.isdir():
                problem = "appears twice (a later copy would replace a checked one)"
            problem = problem or disk_problem(info, target)
            if problem:
                raise _refuse(archive, info, problem)
            seen.add(normalized)
            try:
                tar.extract(info, target, **extract_options)
            except _FILTER_ERROR as error:
                raise UnsafeArchiveError(f"refusing to unpack {archive}: {error}") from None
            except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as error:
                raise PackageIntegrityError(f"{archive} is damaged: {error}") from None


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


def _extract_verified(archive: Path, target: Path, limits: ReadLimits) -> None:
    """One pass: the manifest first, then each file written while hashed and compared with it."""
    budget = Budget(archive, limits)
    listed: dict[str, tuple[str, int]] | None = None
    done: set[str] = set()
    with open_stream(archive) as tar:
        for info in iter_members(tar, archive):
            budget.charge(info)
            problem = member_problem(info) or disk_problem(info, target)
            if problem:
                raise _refuse(archive, info, problem)
            name = posixpath.normpath(info.name)
            if listed is None:
                if name != MANIFEST_NAME or not info.isreg():
                    raise PackageIntegrityError(
                        f"{archive} does not start with {MANIFEST_NAME}: not a package made by 'llmops package'",
                        hint="Unpack other archives with tar, after checking them.",
                    )
                listed = _read_manifest_member(tar, info, archive, target, limits)
                _check_free_space(archive, target, sum(size for _sha, size in listed.values()))
                continue
            if info.isdir():
                os.makedirs(target / name, mode=0o755, exist_ok=True)
                continue
            if not info.isreg():
                raise _refuse(archive, info, f"{member_kind(info)} entries are not part of a package")
            if name not in listed or name in done:
                raise _refuse(archive, info, "not in the manifest" if name not in listed else "appears twice")
            sha, size = listed[name]
            if info.size != size:
                raise PackageIntegrityError(
                    f"{archive}: {name} is {info.size} bytes, the manifest says {size}; nothing was unpacked",
                    hint=f"'llmops package verify {archive}' lists every difference.",
                )
            if _write_member(tar, info, archive, target / name) != sha:
                raise PackageIntegrityError(
                    f"{archive}: {name} does not match its sha256 in the manifest; nothing was unpacked",
                    hint=f"'llmops package verify {archive}' lists every difference.",
                )
            done.add(name)
    if listed is None:
        raise PackageIntegrityError(f"{archive} is empty: not a package made by 'llmops package'")
    missing = sorted(set(listed) - done)
    if missing:
        raise PackageIntegrityError(
            f"{archive}: {len(missing)} file(s) of the manifest are missing ({', '.join(missing[:3])}); "
            "nothing was unpacked"
        )


def _read_manifest_member(tar: tarfile.TarFile, info: tarfile.TarInfo, archive: Path, target: Path,
                          limits: ReadLimits) -> dict[str, tuple[str, int]]:  # fmt: skip
    if info.size > limits.max_manifest_bytes:
        raise PackageLimitError(
            f"{archive}: {MANIFEST_NAME} is {human_bytes(info.size)}, more than the "
            f"{human_bytes(limits.max_manifest_bytes)} a package manifest may have; it was not read",
            hint="A real manifest is a few KB; if you trust this archive, raise --max-manifest-bytes.",
        )
    handle = tar.extractfile(info)
    try:
        data = handle.read() if handle else b""
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        raise PackageIntegrityError(f"{archive} is damaged inside {MANIFEST_NAME}: {error}") from None
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise PackageIntegrityError(f"{archive}: {MANIFEST_NAME} is not valid JSON ({error})") from None
    listed = parse_manifest_files(manifest, archive, limits)
    with open(target / MANIFEST_NAME, "xb") as out:
        out.write(data)
    return listed


def _check_free_space(archive: Path, target: Path, needed: int) -> None:
    free = shutil.disk_usage(target).free
    if needed > free:
        raise PackageLimitError(
            f"{archive} unpacks to {human_bytes(needed)}, but {target.parent} has only {human_bytes(free)} free",
            hint="Free some space or unpack somewhere else.",
        )


def _write_member(tar: tarfile.TarFile, info: tarfile.TarInfo, archive: Path, dest: Path) -> str:
    """Write one regular member to ``dest`` (a new file, never through a link); its sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle = tar.extractfile(info)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    mode = 0o755 if info.mode & 0o100 else 0o644
    digest = hashlib.sha256()
    with os.fdopen(os.open(dest, flags, mode), "wb") as out:
        try:
            for block in iter(lambda: handle.read(_CHUNK), b"") if handle else ():
                digest.update(block)
                out.write(block)
        except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise PackageIntegrityError(f"{archive} is damaged inside {info.name}: {error}") from None
    return digest.hexdigest()
