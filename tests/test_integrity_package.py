"""Integrity of package reading: limits (manifest, bytes, files), links, staging, verify-before-unpack."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.errors import EXIT_VERSIONING
from llmops_cli.package import (
    DEFAULT_LIMITS,
    PackageIntegrityError,
    PackageLimitError,
    ReadLimits,
    UnsafeArchiveError,
    unpack,
    verify_package,
)
from llmops_cli.package import unpacking as archive_mod
from llmops_cli.package.archive import Entry, write_archive

MiB = 1024 * 1024


def _package(path: Path, files: dict[str, bytes], *, lie: dict[str, Any] | None = None) -> Path:
    """A package-shaped archive: manifest.json first (optionally lying about some files), then files."""
    listed = [{"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for p, d in files.items()]
    for entry in listed:
        entry.update((lie or {}).get(entry["path"], {}))
    manifest = json.dumps({"package": "bot", "format": "llmops-package/1", "files": listed}).encode()
    entries = [Entry("manifest.json", data=manifest)] + [Entry(p, data=d) for p, d in files.items()]
    write_archive(entries, path, mtime=0)
    return path


def _gzip_tar(path: Path, write: Callable[[Any], None]) -> Path:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
        write(gz)
        gz.write(b"\0" * 1024)
    return path


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, link
    return info.tobuf(tarfile.PAX_FORMAT)


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def _nothing_beside(dest: Path) -> None:
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir() if ".unpack-" in p.name] == []


@pytest.fixture
def run(cli: Callable[..., Any], tmp_path: Path) -> Callable[..., Any]:
    def invoke(*args: str) -> Any:
        result = cli(*args, cwd=tmp_path)
        assert "internal error" not in result.output.lower()
        return result

    return invoke


# -- defaults --------------------------------------------------------------------------------------


def test_default_limits_fit_a_real_bundle_and_stop_bombs() -> None:
    assert 16 * MiB <= DEFAULT_LIMITS.max_manifest_bytes <= 256 * MiB
    assert DEFAULT_LIMITS.max_total_bytes >= 200 * 1024**3  # a 70B model in 16-bit, with room
    assert DEFAULT_LIMITS.max_total_bytes <= 16 * 1024**4
    assert 10_000 <= DEFAULT_LIMITS.max_files <= 1_000_000


def test_a_good_package_unpacks_verified(tmp_path: Path, run: Callable[..., Any]) -> None:
    archive = _package(tmp_path / "ok.tar.gz", {"llmops.yaml": b"version: 1\n", "models/w.bin": b"w" * 3000})
    result = run("package", "unpack", str(archive), str(tmp_path / "app"))
    assert result.exit_code == 0, result.output
    assert "unpacked and verified 3 files" in result.output
    assert (tmp_path / "app" / "models" / "w.bin").read_bytes() == b"w" * 3000
    assert (tmp_path / "app" / "manifest.json").is_file()


# -- manifest bomb ---------------------------------------------------------------------------------


def test_manifest_bomb_is_not_read(tmp_path: Path, run: Callable[..., Any]) -> None:
    # The header claims a 1 GiB manifest; only a little of it follows. Nothing may try to read it.
    bomb = _gzip_tar(tmp_path / "bomb.tar.gz", lambda gz: gz.write(_header("manifest.json", 1024**3) + b"{" * 4096))
    started = time.monotonic()
    report = verify_package(bomb)
    assert not report.ok and "manifest.json is 1.0 GiB" in (report.error or "")
    for args in (["verify"], ["inspect"], ["unpack"]):
        result = run("package", *args, str(bomb), *(["--max-manifest-bytes", "1MiB"] if args != ["inspect"] else []))
        assert result.exit_code == EXIT_VERSIONING, (args, result.output)
        assert "manifest.json is 1.0 GiB" in " ".join(result.output.split())
    assert time.monotonic() - started < 10
    _nothing_beside(tmp_path / "bot")


def test_manifest_cap_is_a_flag(tmp_path: Path, run: Callable[..., Any]) -> None:
    archive = _package(tmp_path / "ok.tar.gz", {f"f{i}.txt": b"x" for i in range(50)})
    result = run("package", "verify", str(archive), "--max-manifest-bytes", "1KiB")
    assert result.exit_code == EXIT_VERSIONING
    assert "more than the 1.0 KiB a package manifest may have" in " ".join(result.output.split())
    assert run("package", "verify", str(archive)).exit_code == 0


# -- gzip bomb -------------------------------------------------------------------------------------


def _zeros_bomb(path: Path, size: int, *, declared: int | None = None) -> Path:
    """manifest.json (listing big.bin of ``declared`` bytes) then ``size`` zero bytes, streamed."""
    digest = hashlib.sha256()
    for _ in range(size // MiB):
        digest.update(bytes(MiB))
    manifest = json.dumps(
        {"package": "bot", "files": [{"path": "big.bin", "sha256": digest.hexdigest(), "size": declared or size}]}
    ).encode()

    def write(gz: Any) -> None:
        gz.write(_header("manifest.json", len(manifest)) + _padded(manifest))
        gz.write(_header("big.bin", size))
        for _ in range(size // MiB):
            gz.write(bytes(MiB))

    return _gzip_tar(path, write)


def test_gzip_bomb_is_stopped_before_it_fills_the_disk(tmp_path: Path, run: Callable[..., Any]) -> None:
    bomb = _zeros_bomb(tmp_path / "bomb.tar.gz", 32 * MiB)
    assert bomb.stat().st_size < MiB  # tiny on disk, 32 MiB unpacked
    dest = tmp_path / "out" / "app"
    result = run("package", "unpack", str(bomb), str(dest), "--max-bytes", "4MiB")
    assert result.exit_code == EXIT_VERSIONING, result.output
    flat = " ".join(result.output.split())
    assert "declares 32.0 MiB, more than 4.0 MiB" in flat and "--max-bytes" in flat
    _nothing_beside(dest)
    # a manifest that lies about the size is caught at the member header, before any byte is written
    liar = _zeros_bomb(tmp_path / "liar.tar.gz", 32 * MiB, declared=10)
    with pytest.raises(PackageIntegrityError, match="is 33554432 bytes, the manifest says 10"):
        unpack(liar, dest)
    _nothing_beside(dest)
    # without a manifest to trust, the running total stops it
    with pytest.raises(PackageLimitError, match="unpacks to more than 4.0 MiB"):
        unpack(bomb, dest, verify=False, limits=ReadLimits(max_total_bytes=4 * MiB))
    _nothing_beside(dest)
    report = verify_package(bomb, limits=ReadLimits(max_total_bytes=4 * MiB))
    assert not report.ok and "unpacks to more than 4.0 MiB" in (report.error or "")


# -- many files ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest listing nothing, then 200,000 empty files (written as raw headers: fast)."""
    path = tmp_path_factory.mktemp("many") / "many.tar.gz"
    manifest = json.dumps({"package": "bot", "files": []}).encode()
    base = tarfile.TarInfo("f/000000").tobuf(tarfile.USTAR_FORMAT)
    base_sum, name_sum = int(base[148:154], 8), sum(b"f/000000")

    def write(gz: Any) -> None:
        gz.write(_header("manifest.json", len(manifest)) + _padded(manifest))
        for start in range(0, 200_000, 10_000):
            block = []
            for i in range(start, start + 10_000):
                name = b"f/%06d" % i
                block.append(name + base[8:148] + b"%06o\0" % (base_sum - name_sum + sum(name)) + base[155:])
            gz.write(b"".join(block))

    return _gzip_tar(path, write)


def test_200k_file_archive_is_refused_in_bounded_time(
    many_files: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    started = time.monotonic()
    dest = tmp_path / "app"
    with pytest.raises(UnsafeArchiveError, match="not in the manifest"):
        unpack(many_files, dest)  # the first unlisted file stops it
    _nothing_beside(dest)
    with pytest.raises(PackageLimitError, match="more than 1,000 entries"):
        unpack(many_files, dest, verify=False, limits=ReadLimits(max_files=1000))
    _nothing_beside(dest)
    result = run("package", "verify", str(many_files), "--max-files", "5000")
    assert result.exit_code == EXIT_VERSIONING
    flat = " ".join(result.output.split())
    assert "more than 5,000 entries" in flat
    assert "… and 4,979 more" in flat and len(result.output.splitlines()) < 60  # not a 5,000-row table
    assert time.monotonic() - started < 15


def test_manifest_listing_too_many_files_is_refused_up_front(tmp_path: Path) -> None:
    archive = _package(tmp_path / "a.tar.gz", {f"f{i}": b"" for i in range(20)})
    with pytest.raises(PackageLimitError, match="lists 20 files, more than 10"):
        unpack(archive, tmp_path / "app", limits=ReadLimits(max_files=10))
    _nothing_beside(tmp_path / "app")


# -- links -----------------------------------------------------------------------------------------


def _chain(path: Path) -> Path:
    """Each link harmless on paper; together they lead out: a -> ., a/b -> .., then a/b/escape.txt."""

    def write(gz: Any) -> None:
        gz.write(_header("a", 0, tarfile.SYMTYPE, "."))
        gz.write(_header("a/b", 0, tarfile.SYMTYPE, ".."))
        gz.write(_header("a/b/escape.txt", 6) + _padded(b"pwned\n"))

    return _gzip_tar(path, write)


def test_symlink_chain_is_refused_without_the_data_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pythons 3.10.0-3.10.11 / 3.11.0-3.11.3 have no extraction filters: only our own checks stand.
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = _chain(tmp_path / "chain.tar.gz")
    area = tmp_path / "area"
    area.mkdir()
    dest = area / "app"
    with pytest.raises(UnsafeArchiveError, match="outside the target folder once links are followed"):
        unpack(archive, dest, verify=False)
    assert not (area / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    _nothing_beside(dest)
    with pytest.raises(PackageIntegrityError):  # a package starts with its manifest and holds no links
        unpack(archive, dest)
    assert not (area / "escape.txt").exists()


def test_file_written_through_a_link_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()

    def write(gz: Any) -> None:
        gz.write(_header("l", 0, tarfile.SYMTYPE, "."))  # fine
        gz.write(_header("up", 0, tarfile.SYMTYPE, "l/.."))  # lexically '.', on disk the parent folder
        gz.write(_header("up/outside/x.txt", 2) + _padded(b"x\n"))

    archive = _gzip_tar(tmp_path / "c.tar.gz", write)
    with pytest.raises(UnsafeArchiveError, match="once links are followed"):
        unpack(archive, tmp_path / "app", verify=False)
    assert list(outside.iterdir()) == []
    _nothing_beside(tmp_path / "app")


# -- staging cleanup -------------------------------------------------------------------------------


def _unpack_in_child(archive: Path, dest: Path, sig: int) -> int:
    """Unpack in a forked child that receives ``sig`` while writing its second file; its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            real, calls = archive_mod._write_member, [0]

            def write_then_signal(*args: Any) -> str:
                calls[0] += 1
                if calls[0] == 2:
                    os.kill(os.getpid(), sig)
                return real(*args)

            archive_mod._write_member = write_then_signal  # type: ignore[assignment]
            unpack(archive, dest)
        except SystemExit as stop:
            code = int(stop.code or 0)
        except BaseException:
            code = 99
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def test_staging_is_removed_on_sigterm_and_after_sigkill(tmp_path: Path) -> None:
    archive = _package(tmp_path / "ok.tar.gz", {f"f{i}.bin": bytes([i]) * 1000 for i in range(5)})
    area = tmp_path / "area"
    area.mkdir()
    dest = area / "app"
    assert _unpack_in_child(archive, dest, signal.SIGTERM) == 128 + signal.SIGTERM
    assert list(area.iterdir()) == []  # the staging folder went with it
    assert _unpack_in_child(archive, dest, signal.SIGKILL) == -signal.SIGKILL
    assert [p.name for p in area.iterdir() if ".unpack-" in p.name]  # nothing can clean up after kill -9 ...
    unpack(archive, dest)  # ... so the next unpack beside it does
    assert sorted(p.name for p in area.iterdir()) == ["app"]


# -- verify before unpack / serve / prepare ----------------------------------------------------------


def test_tampered_package_is_not_unpacked_or_served(tmp_path: Path, run: Callable[..., Any]) -> None:
    files = {"llmops.yaml": b"version: 1\nname: bot\n", "prompts/a.yaml": b"template: hi\n"}
    archive = _package(tmp_path / "bad.tar.gz", files, lie={"prompts/a.yaml": {"sha256": "0" * 64}})
    result = run("package", "unpack", str(archive), str(tmp_path / "app"))
    assert result.exit_code == EXIT_VERSIONING, result.output
    assert "prompts/a.yaml does not match its sha256 in the manifest; nothing was unpacked" in " ".join(
        result.output.split()
    )
    _nothing_beside(tmp_path / "app")

    from llmops_cli.cli.serve import _unpacked

    with pytest.raises(PackageIntegrityError, match="does not match its sha256"):
        _unpacked(archive, tmp_path / "served")
    _nothing_beside(tmp_path / "served")


def test_prepare_checks_the_unpacked_folder_first(tmp_path: Path, run: Callable[..., Any]) -> None:
    files = {"llmops.yaml": b"version: 1\nname: bot\n", "prompts/a.yaml": b"template: hi\n"}
    archive = _package(tmp_path / "ok.tar.gz", files)
    app = unpack(archive, tmp_path / "app")
    (app / "prompts" / "a.yaml").write_text("template: '{{ secrets }}'\n")
    result = run("-C", str(app), "package", "prepare", "--no-models")
    assert result.exit_code == EXIT_VERSIONING, result.output
    flat = " ".join(result.output.split())
    assert "does not match its manifest" in flat and "prompts/a.yaml" in flat
    (app / "prompts" / "a.yaml").unlink()
    os.symlink(tmp_path / "elsewhere.yaml", app / "prompts" / "a.yaml")
    (tmp_path / "elsewhere.yaml").write_bytes(files["prompts/a.yaml"])
    result = run("-C", str(app), "package", "prepare", "--no-models")
    assert result.exit_code == EXIT_VERSIONING and "replaced by a link" in " ".join(result.output.split())


def test_damaged_archives_never_end_in_an_internal_error(tmp_path: Path, run: Callable[..., Any]) -> None:
    good = _package(tmp_path / "ok.tar.gz", {"llmops.yaml": b"version: 1\n", "w.bin": os.urandom(5000)})
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(data))
    (tmp_path / "cut.tar.gz").write_bytes(bytes(data[: len(data) // 2]))
    weird = io.BytesIO()
    with tarfile.open(fileobj=weird, mode="w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        body = json.dumps({"files": [{"path": "../x", "sha256": "a" * 64, "size": 1}]}).encode()
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    (tmp_path / "weird.tar.gz").write_bytes(weird.getvalue())
    for name in ("flipped", "cut", "weird"):
        for command in ("verify", "unpack"):
            result = run("package", command, str(tmp_path / f"{name}.tar.gz"), *(
                [str(tmp_path / f"{name}-app")] if command == "unpack" else []))  # fmt: skip
            assert result.exit_code == EXIT_VERSIONING, (name, command, result.output)
            assert not (tmp_path / f"{name}-app").exists()


# -- artifact manifests a package is built from ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "sha", "message"),
    [
        ("../../../secret.txt", "a" * 64, "leaves the artifact folder"),
        ("/etc/hostname", "a" * 64, "leaves the artifact folder"),
        ("weights.bin", "..//etc/hostname", "not a sha256 digest"),
    ],
)
def test_crafted_artifact_manifest_is_not_packed(
    project: Path, tmp_path: Path, path: str, sha: str, message: str
) -> None:
    from llmops_cli.errors import VersioningError
    from llmops_cli.package.sources import registered
    from llmops_cli.versioning import ArtifactRegistry

    registry = ArtifactRegistry(project)
    folder = registry.folder("adapter", "faq")
    folder.mkdir(parents=True)
    (folder / "artifact.json").write_text(
        json.dumps({"version": 1, "files": [{"path": path, "sha256": sha, "size": 3}]})
    )
    with pytest.raises(VersioningError, match=message) as info:
        registered(registry, "adapter", "faq", hint="")
    assert info.value.exit_code == EXIT_VERSIONING


# -- deploy: the archive a deployment unpacks ---------------------------------------------------------


def test_deploy_unpack_verifies_once_and_a_reused_folder_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.deploy import local
    from llmops_cli.deploy.package_ref import PackageRef
    from llmops_cli.package import verify as verify_mod

    files = {"llmops.yaml": b"version: 1\nname: bot\n", "prompts/a.yaml": b"template: hi\n"}
    archive = _package(tmp_path / "bot.tar.gz", files)
    ref = PackageRef("bot", 1, hashlib.sha256(archive.read_bytes()).hexdigest(), archive, {})
    checked: list[Path] = []
    real_verify_tree = verify_mod.verify_tree

    def verify_tree(root: Path, *args: Any, **kwargs: Any) -> Any:
        checked.append(root)
        return real_verify_tree(root, *args, **kwargs)

    monkeypatch.setattr(verify_mod, "verify_tree", verify_tree)
    folder = tmp_path / "deploy"
    target = local._unpacked(folder, ref, None)
    assert checked == []  # unpack checked every file as it wrote it: not hashed a second time
    assert (target / "prompts" / "a.yaml").read_bytes() == files["prompts/a.yaml"]

    assert local._unpacked(folder, ref, None) == target and checked == [target]  # reused: checked again
    (target / "prompts" / "a.yaml").write_text("template: '{{ secrets }}'\n")
    with pytest.raises(PackageIntegrityError, match="does not match its manifest"):
        local._unpacked(folder, ref, None)


def _registered_package(project: Path, tmp_path: Path) -> tuple[Any, Any, dict[str, Any]]:
    from llmops_cli.versioning import ArtifactRef, ArtifactRegistry

    archive = _package(tmp_path / "bot.tar.gz", {"llmops.yaml": b"version: 1\nname: bot\n", "w.bin": os.urandom(4096)})
    registry = ArtifactRegistry(project, threshold=1024)  # the archive goes to the content store
    registry.register("package", "bot", {"bot.tar.gz": archive})
    version = registry.get(ArtifactRef("package", "bot", 1))
    entry = next(f for f in version.manifest["files"] if f["path"] == "bot.tar.gz")
    return registry, version, entry


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "../../../../etc/hostname"}, "leaves the artifact folder"),
        ({"path": "/etc/hostname"}, "leaves the artifact folder"),
        ({"sha256": "../../objects/x"}, "not a sha256 digest"),
        ({"size": "12"}, "is not a byte count"),
    ],
)
def test_deploy_refuses_a_crafted_package_manifest(
    project: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    from llmops_cli.deploy.package_ref import _locate
    from llmops_cli.errors import VersioningError

    registry, version, entry = _registered_package(project, tmp_path)
    with pytest.raises(VersioningError, match=message) as info:
        _locate(registry, version, {**entry, **change})
    assert info.value.exit_code == EXIT_VERSIONING


def test_deploy_refuses_a_package_file_linked_out_of_its_folder(project: Path, tmp_path: Path) -> None:
    from llmops_cli.deploy.package_ref import _locate
    from llmops_cli.errors import VersioningError

    registry, version, entry = _registered_package(project, tmp_path)
    work = registry.folder("package", "bot") / "bot.tar.gz"
    outside = tmp_path / "elsewhere.tar.gz"
    outside.write_bytes(work.read_bytes())
    work.unlink()
    os.symlink(outside, work)
    with pytest.raises(VersioningError, match="resolves outside the artifact folder"):
        _locate(registry, version, entry)


def test_deploy_never_serves_a_corrupt_store_object(project: Path, tmp_path: Path) -> None:
    from llmops_cli.deploy.package_ref import _locate, package_at
    from llmops_cli.versioning.store import QUARANTINE, CorruptObjectError

    registry, version, entry = _registered_package(project, tmp_path)
    (registry.folder("package", "bot") / "bot.tar.gz").unlink()  # not in the work tree: from the store
    assert _locate(registry, version, entry) == registry.store.object_path(entry["sha256"])
    stored = registry.store.object_path(entry["sha256"])
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError, match="is corrupt") as info:
        package_at(registry, "bot", 1)
    assert info.value.exit_code == EXIT_VERSIONING and "llmops pull" in (info.value.hint or "")
    assert not stored.exists() and list((registry.store.root / QUARANTINE).iterdir())  # moved aside
