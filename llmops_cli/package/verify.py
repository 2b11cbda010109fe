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
    MANIFEST_NAME,
    PackageIntegrityError,
    hash_member,
    member_kind,
    member_problem,
    read_member_bytes,
)

_CHUNK = 1024 * 1024


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
        for block in iter(lambda: self.handle.read(_CHUNK), b""):
            self.digest.update(block)
            self.size += len(block)


def verify_package(archive: Path, *, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Recompute every hash in ``archive`` and compare with its manifest; never raises for bad content."""
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
            with tarfile.open(fileobj=io.BufferedReader(hashing, _CHUNK), mode="r|gz") as tar:
                for info in tar:
                    _check_member(tar, info, archive, report, actual)
        except PackageIntegrityError as error:
            report.error = error.message
        except Exception as error:  # gzip CRC, inflate, truncated tar: all mean a damaged file
            report.error = f"the archive is damaged: {type(error).__name__}: {error}"
        hashing.drain()
    report.sha256, report.size = hashing.digest.hexdigest(), hashing.size
    _compare(report, actual)
    return report


def _check_member(tar: Any, info: Any, archive: Path, report: VerifyReport, actual: dict[str, tuple[str, int]]) -> None:
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
        handle = tar.extractfile(info)
        data = handle.read() if handle else b""
        actual[name] = (hashlib.sha256(data).hexdigest(), len(data))
        try:
            report.manifest = json.loads(data)
        except ValueError as error:
            raise PackageIntegrityError(f"{MANIFEST_NAME} is not valid JSON ({error})") from None
        return
    actual[name] = (hash_member(tar, info, archive), info.size)


def _compare(report: VerifyReport, actual: dict[str, tuple[str, int]]) -> None:
    if report.manifest is None:
        if report.error is None:
            report.error = f"no {MANIFEST_NAME}: not a package made by 'llmops package'"
        return
    listed = {str(f["path"]): (str(f["sha256"]), int(f["size"])) for f in report.manifest.get("files", [])}
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


def read_manifest(archive: Path) -> dict[str, Any]:
    """The manifest of a package archive (read from its first member, without unpacking)."""
    data = read_member_bytes(Path(archive), MANIFEST_NAME)
    if data is None:
        raise PackageIntegrityError(f"{archive} has no {MANIFEST_NAME}: not a package made by 'llmops package'.")
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise PackageIntegrityError(f"{archive}: {MANIFEST_NAME} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise PackageIntegrityError(f"{archive}: {MANIFEST_NAME} is not a JSON object")
    return manifest
