"""``llmops package verify`` and ``inspect``: check an archive against its manifest, read the manifest.

Verification is one streaming pass over the archive: the compressed bytes are hashed (the sha256
to compare with ``llmops show package/NAME``) while every member is hashed and checked for safety.
A damaged gzip stream (a flipped byte in the compressed data) fails its CRC or inflate and is
reported as such; a member whose content differs from the manifest is "altered".
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from llmops_cli.package.archive import (
    CHUNK,
    DEFAULT_LIMITS,
    MANIFEST_NAME,
    Budget,
    PackageIntegrityError,
    PackageLimitError,
    ReadLimits,
    hash_member,
    human_bytes,
    member_kind,
    read_member_bytes,
)
from llmops_cli.package.safety import member_problem, parse_manifest_files
from llmops_cli.versioning.store import sha256_file


@dataclass
class VerifyReport:
    archive: Path
    sha256: str = ""
    size: int = 0
    manifest: dict[str, Any] | None = None
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    altered: list[dict[str, Any]] = field(default_factory=list)
    unsafe: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None  # the archive could not be read to the end

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.altered or self.unsafe or self.error)

    def summary(self) -> str:
        if self.ok:
            return f"{self.checked} files match the manifest"
        parts = [f"{len(v)} {k}" for k, v in (("missing", self.missing), ("extra", self.extra),
                                               ("altered", self.altered), ("unsafe", self.unsafe)) if v]  # fmt: skip
        if self.error:
            parts.append(self.error)
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "ok": self.ok,
            "sha256": self.sha256,
            "size": self.size,
            "package": (self.manifest or {}).get("package"),
            "version": (self.manifest or {}).get("version"),
            "checked": self.checked,
            "missing": self.missing,
            "extra": self.extra,
            "altered": self.altered,
            "unsafe": self.unsafe,
            "error": self.error,
        }


class _HashingFile(io.RawIOBase):
    def __init__(self, handle: IO[bytes], on_bytes: Callable[[int], None] | None) -> None:
        self.handle, self.digest, self.size, self.on_bytes = handle, hashlib.sha256(), 0, on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.handle.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        self.size += len(data)
        if self.on_bytes and data:
            self.on_bytes(len(data))
        return len(data)

    def drain(self) -> None:
        for block in iter(lambda: self.handle.read(CHUNK), b""):
            self.digest.update(block)
            self.size += len(block)


def verify_package(
    archive: Path, *, progress: Callable[[int, int], None] | None = None, limits: ReadLimits = DEFAULT_LIMITS
) -> VerifyReport:
    """Recompute every hash in ``archive`` and compare with its manifest; never raises for bad content.

    Reading stops (``report.error``) as soon as the archive goes past one of ``limits``: a huge
    manifest is never read into memory, and a bomb is not decompressed to the end.
    """
    import tarfile

    archive = Path(archive)
    if not archive.is_file():
        from llmops_cli.errors import UsageError

        raise UsageError(f"No package archive at {archive}.")
    report = VerifyReport(archive)
    total, seen = archive.stat().st_size, [0]

    def on_bytes(n: int) -> None:
        seen[0] += n
        if progress:
            progress(min(seen[0], total), total)

    actual: dict[str, tuple[str, int]] = {}
    with open(archive, "rb") as raw:
        hashing = _HashingFile(raw, on_bytes)
        try:
            budget = Budget(archive, limits)
            with tarfile.open(fileobj=io.BufferedReader(hashing, CHUNK), mode="r|gz") as tar:
                for info in tar:
                    budget.charge(info)
                    _check_member(tar, info, archive, report, actual, limits)
        except PackageIntegrityError as error:
            report.error = error.message
        except Exception as error:  # gzip CRC, inflate, truncated tar: all mean a damaged file
            report.error = f"the archive is damaged: {type(error).__name__}: {error}"
        hashing.drain()
    report.sha256, report.size = hashing.digest.hexdigest(), hashing.size
    _compare(report, actual, limits)
    return report


def _check_member(
    tar: Any, info: Any, archive: Path, report: VerifyReport, actual: dict[str, tuple[str, int]], limits: ReadLimits
) -> None:
    problem = member_problem(info)
    name = posixpath.normpath(info.name)
    kind = member_kind(info)
    if problem is None and kind == "file" and name in actual:
        problem = "appears twice"
    if problem is not None:
        report.unsafe.append({"path": info.name, "problem": problem})
        return
    if kind == "dir":
        return  # folders carry no content; re-packed archives may list them
    if kind != "file":
        report.unsafe.append({"path": info.name, "problem": f"{kind} entries are not part of a package"})
        return
    if name == MANIFEST_NAME:
        if info.size > limits.max_manifest_bytes:
            raise PackageLimitError(
                f"{MANIFEST_NAME} is {human_bytes(info.size)}, more than the "
                f"{human_bytes(limits.max_manifest_bytes)} a package manifest may have (not read; --max-manifest-bytes)"
            )
        handle = tar.extractfile(info)
        data = handle.read() if handle else b""
        actual[name] = (hashlib.sha256(data).hexdigest(), len(data))
        try:
            report.manifest = json.loads(data)
        except ValueError as error:
            raise PackageIntegrityError(f"{MANIFEST_NAME} is not valid JSON ({error})") from None
        return
    actual[name] = (hash_member(tar, info, archive), info.size)


def _compare(report: VerifyReport, actual: dict[str, tuple[str, int]], limits: ReadLimits) -> None:
    if report.manifest is None:
        if report.error is None:
            report.error = f"no {MANIFEST_NAME}: not a package made by 'llmops package'"
        return
    try:
        listed = parse_manifest_files(report.manifest, report.archive, limits)
    except PackageIntegrityError as error:
        report.error = report.error or error.message
        return
    for path, (sha, size) in sorted(listed.items()):
        if path not in actual:
            if report.error is None:  # after a read error, "missing" would only repeat it
                report.missing.append(path)
            continue
        got_sha, got_size = actual[path]
        if (got_sha, got_size) != (sha, size):
            report.altered.append({"path": path, "expected_sha256": sha, "actual_sha256": got_sha,
                                   "expected_size": size, "actual_size": got_size})  # fmt: skip
    report.extra = sorted(p for p in actual if p not in listed and p != MANIFEST_NAME)
    report.checked = sum(1 for p in listed if p in actual)


def read_manifest(archive: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The manifest of a package archive (read from its first member, without unpacking)."""
    data = read_member_bytes(Path(archive), MANIFEST_NAME, limit=limits.max_manifest_bytes, first=True)
    if data is None:
        raise PackageIntegrityError(
            f"{archive} does not start with {MANIFEST_NAME}: not a package made by 'llmops package'."
        )
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise PackageIntegrityError(f"{archive}: {MANIFEST_NAME} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise PackageIntegrityError(f"{archive}: {MANIFEST_NAME} is not a JSON object")
    return manifest


def verify_tree(root: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> int:
    """Check an unpacked package folder against its ``manifest.json``; the number of files checked.

    Every listed file must be a regular file inside ``root`` (no link on the way) with the listed
    size and sha256. Raises :class:`PackageIntegrityError` (exit code 4) naming what differs.
    """
    import os

    root = Path(root)
    manifest_file = root / MANIFEST_NAME
    if manifest_file.is_symlink() or not manifest_file.is_file():
        raise PackageIntegrityError(f"{root} has no {MANIFEST_NAME}: it is not an unpacked package")
    if manifest_file.stat().st_size > limits.max_manifest_bytes:
        raise PackageLimitError(
            f"{manifest_file} is {human_bytes(manifest_file.stat().st_size)}, more than the "
            f"{human_bytes(limits.max_manifest_bytes)} a package manifest may have; it was not read"
        )
    try:
        manifest = json.loads(manifest_file.read_bytes())
    except ValueError as error:
        raise PackageIntegrityError(f"{manifest_file} is not valid JSON ({error})") from None
    listed = parse_manifest_files(manifest, root, limits)
    base = os.path.realpath(root)
    problems = []
    for path, (sha, size) in sorted(listed.items()):
        local = root / path
        if os.path.realpath(local) != os.path.join(base, *path.split("/")) or not local.is_file():
            problems.append(f"{path}: missing or replaced by a link")
        elif local.stat().st_size != size:
            problems.append(f"{path}: {local.stat().st_size} bytes, the manifest says {size}")
        elif sha256_file(local) != sha:
            problems.append(f"{path}: content differs from the manifest")
    if problems:
        raise PackageIntegrityError(
            f"{root} does not match its manifest: {len(problems)} file(s) differ: " + "; ".join(problems[:5]),
            hint="Unpack the package again from its archive ('llmops package unpack ARCHIVE DIR').",
        )
    return len(listed)
