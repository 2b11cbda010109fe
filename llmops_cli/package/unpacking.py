"""Safe extraction of a package archive (:func:`unpack`): checked, verified and atomic.

Every member is checked (absolute paths, ``..``, links leaving the target, devices, duplicates) and
tarfile's ``data`` filter is passed too where the interpreter has it (3.12+, and backported to
3.8.17 / 3.9.17 / 3.10.12 / 3.11.4).
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import json
import os
import posixpath
import shutil
import signal
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops_cli.errors import UsageError
from llmops_cli.package.archive import (
    CHUNK,
    DEFAULT_LIMITS,
    MANIFEST_NAME,
    Budget,
    PackageIntegrityError,
    PackageLimitError,
    ReadLimits,
    UnsafeArchiveError,
    human_bytes,
    iter_members,
    member_kind,
    open_stream,
)
from llmops_cli.package.safety import disk_problem, member_problem, parse_manifest_files

# Interpreters without extraction filters have no FilterError; an empty tuple catches nothing.
_FILTER_ERROR: Any = getattr(tarfile, "FilterError", ())

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
            for block in iter(lambda: handle.read(CHUNK), b"") if handle else ():
                digest.update(block)
                out.write(block)
        except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise PackageIntegrityError(f"{archive} is damaged inside {info.name}: {error}") from None
    return digest.hexdigest()
