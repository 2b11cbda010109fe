"""``llmops package NAME``: plan, generate, hash, write the archive, and version it as ``package/NAME/vN``.

The archive lands in ``artifacts/package/NAME/NAME.tar.gz`` through the artifact registry (written
atomically; above the size threshold it lives in the content store with a committed pointer), and
optionally also at ``--output``. Its manifest carries the version it is registered as: a build
whose content equals the latest version's reuses that version number, so building again with the
same inputs gives the same bytes and registers nothing new.

Reuse before rebuild: the content digest is computed before anything is written, with the files'
hashes from the stat-keyed hash cache (``.llmops/cache/hashes.sqlite``: a weight file untouched
since it was last hashed is not read again). When it equals the latest version's, and that
version's archive is in the work tree (or the content store) with its registered sha256, the build
stops there: no archive is written, nothing is registered.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import ConfigError, VersioningError
from llmops_cli.package.archive import MANIFEST_NAME, Entry, sha256_entry, write_archive
from llmops_cli.package.bundle import PackagePlan, plan_package
from llmops_cli.package.generated import SERVE_PY, dockerfile, llmops_yaml, model_card
from llmops_cli.package.manifest import build_manifest, content_digest, hardware, source_commit
from llmops_cli.package.requirements import closure, llmops_wheel, requirements_text, roots
from llmops_cli.progress import ProgressFn

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.versioning import ArtifactRegistry
    from llmops_cli.versioning.hashcache import HashCache

# progress phases: plan, hash, write, register
DEFAULT_COMPRESSLEVEL = 1  # model weights barely compress: level 6 is ~4x slower for ~3% smaller


@dataclass
class PackageResult:
    name: str
    archive: Path
    sha256: str
    size: int
    files: int
    version: str | None  # package/NAME/vN, None when not registered
    reused: bool  # the latest registered version already had exactly this content
    seconds: float
    manifest: dict[str, Any] = field(repr=False)
    output: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "package": self.name,
            "archive": str(self.archive),
            "output": str(self.output) if self.output else None,
            "sha256": self.sha256,
            "size": self.size,
            "files": self.files,
            "version": self.version,
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            "hardware": self.manifest.get("hardware"),
        }


def build_package(
    config: ProjectConfig,
    name: str,
    *,
    output: Path | None = None,
    register: bool = True,
    compresslevel: int = DEFAULT_COMPRESSLEVEL,
    progress: ProgressFn | None = None,
) -> PackageResult:
    """Build package ``name``; register it unless ``register`` is False (then ``output`` or dist/NAME.tar.gz)."""
    report: ProgressFn = progress or (lambda _phase, _done, _total: None)
    started = time.perf_counter()
    report("plan", 0, 0)
    plan = plan_package(config, name)
    registry = _registry(config) if register else None
    commit = source_commit(config.root, plan.git_paths, registry.git if registry else None)
    hw = hardware(plan)
    if registry is not None:
        registry.ensure_state_dir()  # the caches below live in .llmops/, which must ignore itself
    entries = _generated(plan, commit, hw, registry.state if registry else None) + list(plan.entries.values())
    hashes = _hash_cache(registry)
    try:
        files = _hash_all(entries, plan.expected, report, hashes)
        manifest = build_manifest(plan, files, commit, hw)
        digest = content_digest(manifest)
        version, previous_sha = _version_for(registry, name, digest, compresslevel)
        if registry is not None and hashes is not None and previous_sha is not None:
            kept = _reuse_registered(registry, name, previous_sha, output, hashes)
            if kept is not None:  # unchanged: decided before writing anything
                archive, size, kept_manifest = kept
                return PackageResult(name, archive, previous_sha, size, len(files) + 1, f"package/{name}/v{version}",
                                     True, time.perf_counter() - started, kept_manifest,
                                     output.resolve() if output else None)  # fmt: skip
    finally:
        if hashes is not None:
            hashes.close()
    # Only new content needs checking: a reused version's bundle (same llmops wheel included) passed it.
    check_bundle_config(plan)
    expected = {path: sha for path, (sha, _size) in files.items()}

    def write(target: Path, number: int | None) -> tuple[str, int]:
        manifest.pop("version", None)
        ordered = {"format": manifest["format"], "package": name, "version": number, **manifest}
        manifest.clear()
        manifest.update(ordered)
        data = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        everything = [Entry(MANIFEST_NAME, data=data), *entries]
        total = sum(size for _sha, size in files.values()) + len(data)
        done = [0]

        def on_bytes(n: int) -> None:
            done[0] += n
            report("write", done[0], total)

        write_archive(everything, target, mtime=commit.timestamp, expected=expected, compresslevel=compresslevel,
                      on_bytes=on_bytes)  # fmt: skip
        return sha256_entry(Entry(target.name, source=target))

    if registry is None:
        target = (output or config.root / "dist" / f"{name}.tar.gz").resolve()
        sha, size = write(target, None)
        return PackageResult(name, target, sha, size, len(files) + 1, None, False, time.perf_counter() - started,
                             manifest, target)  # fmt: skip
    registry.ensure_state_dir()
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"package-{name}-", dir=_tmp_root(registry)))
    try:
        tmp = tmp_dir / f"{name}.tar.gz"
        sha, size = write(tmp, version)
        reused = previous_sha == sha
        if previous_sha is not None and not reused:  # same content, other bytes (compression level, zlib)
            version += 1
            sha, size = write(tmp, version)
        report("register", 0, 0)
        archive = registry.folder("package", name) / f"{name}.tar.gz"
        if reused:
            _refresh(archive, tmp, sha)
        else:
            _register(registry, plan, name, tmp, version, digest, sha, size, manifest, compresslevel)
        target = archive
        if output is not None:
            _copy_atomic(tmp, output.resolve())
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    tag = f"package/{name}/v{version}"
    return PackageResult(name, target, sha, size, len(files) + 1, tag, reused, time.perf_counter() - started,
                         manifest, output.resolve() if output else None)  # fmt: skip


# -- steps ----------------------------------------------------------------------------------------------


def check_bundle_config(plan: PackagePlan) -> None:
    """Validate the bundle's llmops.yaml with its small files, as the bundle will load it."""
    from llmops_cli.validation import validate_project

    with tempfile.TemporaryDirectory(prefix="llmops-package-check-") as tmp:
        root = Path(tmp)
        (root / "llmops.yaml").write_bytes(llmops_yaml(plan))
        for path, entry in plan.entries.items():
            if path.startswith(("artifacts/", "model/", "wheels/")):
                continue  # weights and indexes: validation never opens them
            dest = root / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if entry.data is not None:
                dest.write_bytes(entry.data)
            elif entry.source is not None:
                # A copy, not a symlink: the bundle's paths must resolve inside it, as they will unpacked.
                shutil.copyfile(entry.source, dest)
        result = validate_project(root, env=os.environ)
        if not result.ok:
            raise ConfigError(
                f"the llmops.yaml of package '{plan.name}' would not validate (a bug in llmops package)",
                problems=[str(p) for p in result.problems],
            )


def _generated(plan: PackagePlan, commit: Any, hw: dict[str, Any], state: Path | None = None) -> list[Entry]:
    wheel_name, wheel = llmops_wheel()
    pinned = _pinned(roots(plan.needs), plan.needs.no_deps, state)
    return [
        Entry("llmops.yaml", data=llmops_yaml(plan)),
        Entry("README.md", data=model_card(plan, commit, hw)),
        Entry("Dockerfile", data=dockerfile(plan)),
        Entry("serve.py", data=SERVE_PY.encode("utf-8"), mode=0o755),
        Entry("requirements.txt", data=requirements_text(pinned, wheel_name).encode("utf-8")),
        Entry(f"wheels/{wheel_name}", data=wheel),
    ]


def _pinned(start: dict[str, set[str]], no_deps: tuple[str, ...], state: Path | None) -> dict[str, str]:
    """:func:`closure`, remembered in ``.llmops/cache/closure.json`` for as long as the installed
    distributions (their ``*.dist-info`` folders: name, version and mtime) stay the same."""
    import hashlib
    import sys

    if state is None:
        return closure(start, no_deps)
    listing = []
    for entry in dict.fromkeys(sys.path):
        folder = Path(entry or ".")
        try:
            listing += [f"{d.name} {d.stat().st_mtime_ns}" for d in folder.iterdir() if d.name.endswith(".dist-info")]
        except OSError:
            continue
    request = json.dumps([sorted((k, sorted(v)) for k, v in start.items()), sorted(no_deps)])
    key = hashlib.sha256("\n".join([request, *sorted(listing)]).encode()).hexdigest()
    path = state / "cache" / "closure.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("key") == key and isinstance(cached.get("pinned"), dict):
            return {str(k): str(v) for k, v in cached["pinned"].items()}
    except (OSError, ValueError, AttributeError):
        pass
    pinned = closure(start, no_deps)
    try:
        from llmops_cli.paths import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": key, "pinned": pinned}, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass
    return pinned


def _hash_all(
    entries: list[Entry], expected: dict[str, str], report: ProgressFn, hashes: HashCache | None = None
) -> dict[str, tuple[str, int]]:
    total = sum(e.size for e in entries)
    done = [0]

    def on_bytes(n: int) -> None:
        done[0] += n
        report("hash", done[0], total)

    def read(path: Path) -> str:
        return sha256_entry(Entry(path.name, source=path), on_bytes)[0]

    files = {}
    for entry in entries:
        if hashes is not None and entry.source is not None:  # a file: its hash may be cached
            size, hits = entry.source.stat().st_size, hashes.hits
            sha = hashes.sha256(entry.source, read=read)
            if hashes.hits > hits:
                on_bytes(size)  # not read: it counts as hashed
        else:
            sha, size = sha256_entry(entry, on_bytes)
        want = expected.get(entry.path)
        if want is not None and want != sha:
            raise VersioningError(
                f"{entry.source} differs from the version that was registered "
                f"(sha256 {sha[:12]}, expected {want[:12]})",
                hint="Restore it with 'llmops checkout KIND/NAME', or rebuild the artifact so it gets a new version.",
            )
        files[entry.path] = (sha, size)
    return files


def _registry(config: ProjectConfig) -> ArtifactRegistry:
    from llmops_cli.versioning import ArtifactRegistry

    registry = ArtifactRegistry.for_config(config)
    _ = registry.git  # outside a git repository: fail before the long write
    return registry


def _tmp_root(registry: ArtifactRegistry) -> Path:
    folder = registry.state / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _hash_cache(registry: ArtifactRegistry | None) -> HashCache | None:
    if registry is None:
        return None
    from llmops_cli.versioning.hashcache import HashCache

    return HashCache(registry.state)


def _version_for(
    registry: ArtifactRegistry | None, name: str, digest: str, compresslevel: int = DEFAULT_COMPRESSLEVEL
) -> tuple[int, str | None]:
    """(version to embed, sha256 of the latest version's archive when its content is the same)."""
    if registry is None:
        return 0, None
    from llmops_cli.versioning import ArtifactRef

    versions = registry.versions(ArtifactRef("package", name))
    if not versions:
        return 1, None
    latest = versions[-1]
    manifest = registry.read_manifest(latest)
    params = manifest.get("params", {})
    same_level = params.get("compresslevel", DEFAULT_COMPRESSLEVEL) == compresslevel
    if params.get("content_digest") == digest and same_level:
        shas = [f["sha256"] for f in manifest.get("files", []) if f.get("path") == f"{name}.tar.gz"]
        if shas:
            return latest.version, shas[0]
    return latest.version + 1, None


def _register(
    registry: ArtifactRegistry,
    plan: PackagePlan,
    name: str,
    archive: Path,
    version: int,
    digest: str,
    sha: str,
    size: int,
    manifest: dict[str, Any],
    compresslevel: int = DEFAULT_COMPRESSLEVEL,
) -> None:
    from llmops_cli.versioning import Input

    inputs = [Input(c.ref, c.hash) for c in plan.components if c.hash]
    registered = registry.register(
        "package",
        name,
        {f"{name}.tar.gz": archive},
        inputs=inputs,
        config_hash=plan.config.section_hash("packages", name),
        metrics={
            "size": size,
            "files": len(manifest["files"]) + 1,
            "memory_bytes": manifest["hardware"]["memory_bytes"],
        },
        params={
            "content_digest": digest,
            "serves": manifest["serves"],
            "git_sha": manifest.get("git_sha"),
            "compresslevel": compresslevel,
        },
        summary=f"{len(manifest['files']) + 1} files, {size} bytes, sha256 {sha[:12]}",
    )
    if registered.version != version:
        raise VersioningError(
            f"package/{name} was registered as v{registered.version} while this build embedded v{version} "
            "(another build registered at the same time)",
            hint=f"Run 'llmops package {name}' again.",
        )


def _reuse_registered(
    registry: ArtifactRegistry, name: str, sha: str, output: Path | None, hashes: HashCache
) -> tuple[Path, int, dict[str, Any]] | None:
    """The registered archive with exactly this content, put back in the work tree (and at ``output``)
    from the content store if need be; None when neither holds it (then the build writes it again)."""
    from llmops_cli.package.verify import read_manifest

    archive = registry.folder("package", name) / f"{name}.tar.gz"
    if not (archive.is_file() and hashes.sha256(archive) == sha):
        if not registry.store.has(sha):
            return None
        registry.store.copy_out(sha, archive)  # verified as it is copied
    if output is not None:
        _copy_atomic(archive, output.resolve())
    return archive, archive.stat().st_size, read_manifest(archive)


def _refresh(archive: Path, built: Path, sha: str) -> None:
    """An identical version is registered: make sure its archive is in the work tree too."""
    from llmops_cli.versioning import sha256_file

    if archive.is_file() and sha256_file(archive) == sha:
        return
    _copy_atomic(built, archive)


def _copy_atomic(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp_name)
        os.replace(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
