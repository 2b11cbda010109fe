"""Artifact versions: register (files + manifest + commit + tag), list, show and check out.

An artifact ``KIND/NAME`` lives in ``<project>/<artifacts_dir>/KIND/NAME/``. Each registration
writes that folder atomically, moves files above the size threshold into the content store
(committing a ``<file>.ptr`` pointer and git-ignoring the file itself), commits only that folder
with machine-readable trailers, and tags the commit ``KIND/NAME/vN``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError, VersioningError
from llmops_cli.paths import STATE_DIR, atomic_write_text, file_lock
from llmops_cli.versioning.gitrepo import GitRepo
from llmops_cli.versioning.installed import installed_versions
from llmops_cli.versioning.store import POINTER_SUFFIX, ContentStore, Pointer, check_digest, copy_hashed

if TYPE_CHECKING:
    from llmops_cli.versioning.hashcache import HashCache

KINDS = ("dataset", "adapter", "eval", "quantized", "package", "deploy", "index", "model", "report", "file")
MANIFEST = "artifact.json"
TRACKED_LIBRARIES = (
    "llmops", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "chromadb",
    "safetensors", "tokenizers",
)  # fmt: skip
_DISTRIBUTIONS = {"llmops": "llmops-cli"}  # recorded as 'llmops'; its distribution on PyPI is llmops-cli
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REF = re.compile(r"^(?P<kind>[a-z]+)/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:@v?(?P<version>\d+|latest))?$")


@dataclass(frozen=True)
class ArtifactRef:
    kind: str
    name: str
    version: int | None = None  # None: the latest

    @classmethod
    def parse(cls, text: str) -> ArtifactRef:
        match = _REF.match(text.strip())
        if not match or match["kind"] not in KINDS:
            raise UsageError(
                f"'{text}' is not an artifact reference",
                hint=f"Write KIND/NAME[@vN] with KIND one of: {', '.join(KINDS)} (e.g. adapter/faq-lora@v2).",
            )
        version = match["version"]
        return cls(match["kind"], match["name"], None if version in (None, "latest") else int(version))

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def tag(self, version: int) -> str:
        return f"{self.kind}/{self.name}/v{version}"

    def __str__(self) -> str:
        return self.key + (f"@v{self.version}" if self.version else "")


@dataclass(frozen=True)
class Input:
    """Something an artifact was made from: ``ref`` (e.g. ``dataset/faq@v2``, a path) and its hash."""

    ref: str
    hash: str


@dataclass
class ArtifactVersion:
    kind: str
    name: str
    version: int
    commit: str
    tag: str
    date: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


def library_versions(names: tuple[str, ...] = TRACKED_LIBRARIES) -> dict[str, str]:
    """Installed versions (from metadata; nothing is imported)."""
    distributions = {name: _DISTRIBUTIONS.get(name, name) for name in names}
    found = installed_versions(distributions.values())
    return {name: found[dist] for name, dist in distributions.items() if dist in found}


def format_trailers(manifest: Mapping[str, Any]) -> str:
    lines = [
        f"Llmops-Artifact: {manifest['artifact']}",
        f"Llmops-Version: {manifest['version']}",
    ]
    lines += [f"Llmops-Input: {i['ref']} {i['hash']}" for i in manifest.get("inputs", [])]
    if manifest.get("config_hash"):
        lines.append(f"Llmops-Config-Hash: {manifest['config_hash']}")
    lines += [f"Llmops-Library: {k}=={v}" for k, v in sorted(manifest.get("libraries", {}).items())]
    return "\n".join(lines)


def parse_trailers(message: str) -> dict[str, list[str]]:
    trailers: dict[str, list[str]] = {}
    for line in message.splitlines():
        match = re.match(r"^(Llmops-[A-Za-z-]+):\s*(.*)$", line.strip())
        if match:
            trailers.setdefault(match[1], []).append(match[2])
    return trailers


class ArtifactRegistry:
    """Versioned artifacts of one project."""

    def __init__(self, project_root: Path, *, artifacts_dir: str = "artifacts", threshold: int = 1024 * 1024):
        self.project_root = project_root.resolve()
        self.artifacts_dir = artifacts_dir
        self.threshold = threshold
        self.state = self.project_root / STATE_DIR
        self.store = ContentStore(self.state / "store")
        self._git: GitRepo | None = None

    @classmethod
    def for_config(cls, config: Any) -> ArtifactRegistry:
        return cls(config.root, artifacts_dir=config.storage.artifacts_dir, threshold=config.storage.threshold)

    @property
    def git(self) -> GitRepo:
        if self._git is None:
            self._git = GitRepo(self.project_root)
        return self._git

    def folder(self, kind: str, name: str) -> Path:
        """Where the artifact ``KIND/NAME`` lives in the work tree: the one answer to "where is it"."""
        return self.project_root / self.artifacts_dir / kind / name

    def checked_out_manifest(self, kind: str, name: str) -> dict[str, Any]:
        """The ``artifact.json`` of the version in the work tree ({} when there is none or it is unreadable)."""
        try:
            data = json.loads((self.folder(kind, name) / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- state dir -------------------------------------------------------------------------------
    def ensure_state_dir(self) -> None:
        """``.llmops/`` ignores itself, so the user's .gitignore needs no edit."""
        self.state.mkdir(parents=True, exist_ok=True)
        ignore = self.state / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# llmops state: content store, caches, indexes\n*\n")

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.ensure_state_dir()
        with file_lock(self.state / "lock"):
            yield

    # -- register ------------------------------------------------------------------------------
    def register(
        self,
        kind: str,
        name: str,
        files: Mapping[str, Path],
        *,
        inputs: list[Input] | None = None,
        config_hash: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        summary: str | None = None,
    ) -> ArtifactVersion:
        """Record a new version of ``kind/name`` made of ``files`` (``relative path -> source``)."""
        if kind not in KINDS:
            raise UsageError(f"unknown artifact kind '{kind}' (one of: {', '.join(KINDS)})")
        if not _NAME.match(name):
            raise UsageError(f"invalid artifact name '{name}'")
        for rel in files:
            parts = Path(rel).parts
            if Path(rel).is_absolute() or ".." in parts or rel in (MANIFEST, ".gitignore"):
                raise UsageError(f"invalid artifact file path '{rel}'")
            if rel.endswith(POINTER_SUFFIX):
                raise UsageError(f"artifact file '{rel}' may not end in {POINTER_SUFFIX}")
        ref = ArtifactRef(kind, name)
        with self.lock():
            self._sweep_leftovers()
            repo = self.git
            version = self.latest_version(ref) + 1
            tag = ref.tag(version)
            staged, manifest = self._stage(ref, version, files, inputs, config_hash, metrics, params)
            written = self._hashes().clock()  # every file is written; none is visible yet
            final = self.folder(kind, name)
            message = self._message(manifest, summary)
            trash = self._swap_in(staged, final)
            try:
                # Commit and tag land in one ref transaction: killed at any step, the repository
                # holds either the whole version or none of it, and a rerun makes exactly one.
                commit = repo.commit_paths([repo.relpath(final)], message, tag=tag)
            except BaseException:
                self._restore(final, trash)
                raise
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
            self._remember_hashes(final, manifest["files"], written)
            return ArtifactVersion(kind, name, version, commit, tag, manifest["created"], manifest)

    def _hashes(self) -> HashCache:
        from llmops_cli.versioning.hashcache import HashCache

        return HashCache(self.state)

    def _remember_hashes(self, final: Path, entries: list[dict[str, Any]], written: tuple[int, int] | None) -> None:
        """The registered files' hashes go into the stat-keyed hash cache: the next command that
        checks them (an unchanged re-run) does not read them again."""
        hashes = self._hashes()
        try:
            for entry in entries:
                hashes.remember_written(final / entry["path"], entry["sha256"], written)
        finally:
            hashes.close()

    def _stage(
        self,
        ref: ArtifactRef,
        version: int,
        files: Mapping[str, Path],
        inputs: list[Input] | None,
        config_hash: str | None,
        metrics: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
    ) -> tuple[Path, dict[str, Any]]:
        staged = self.state / "tmp" / f"register-{ref.kind}-{ref.name}-{uuid.uuid4().hex[:8]}"
        staged.mkdir(parents=True)
        entries, ignored = [], []
        try:
            for rel, source in sorted(files.items()):
                source = Path(source)
                if not source.is_file():
                    raise UsageError(f"artifact file source {source} does not exist or is not a file")
                dest = staged / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(source, "rb") as src, open(dest, "wb") as out:
                    sha, size = copy_hashed(src, out)
                stored = size > self.threshold
                if stored:
                    self.store.put(dest, sha)
                    ptr = Pointer(sha, size, Path(rel).name)
                    (staged / (rel + POINTER_SUFFIX)).write_text(ptr.dumps())
                    ignored.append("/" + Path(rel).as_posix())
                entries.append({"path": Path(rel).as_posix(), "sha256": sha, "size": size, "stored": stored})
            if ignored:
                (staged / ".gitignore").write_text(
                    "# kept in the llmops content store; the .ptr files are committed instead\n"
                    + "\n".join(ignored)
                    + "\n"
                )
            manifest = {
                "artifact": ref.key,
                "kind": ref.kind,
                "name": ref.name,
                "version": version,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "git_parent": self.git.head(),
                "files": entries,
                "inputs": [{"ref": i.ref, "hash": i.hash} for i in inputs or []],
                "config_hash": config_hash,
                "metrics": dict(metrics or {}),
                "params": dict(params or {}),
                "libraries": library_versions(),
            }
            atomic_write_text(staged / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return staged, manifest

    @staticmethod
    def _message(manifest: Mapping[str, Any], summary: str | None) -> str:
        head = f"llmops: {manifest['artifact']} v{manifest['version']}"
        body = f"\n\n{summary}" if summary else ""
        return f"{head}{body}\n\n{format_trailers(manifest)}\n"

    def _sweep_leftovers(self) -> None:
        """Remove what a killed register/checkout left in ``.llmops/tmp`` (we hold the lock)."""
        tmp = self.state / "tmp"
        if not tmp.is_dir():
            return
        prefixes = ("register-", "old-", "checkout-")  # only our own: other commands use .llmops/tmp too
        for entry in tmp.iterdir():
            if entry.is_dir() and not entry.is_symlink() and entry.name.startswith(prefixes):
                shutil.rmtree(entry, ignore_errors=True)

    def _swap_in(self, staged: Path, final: Path) -> Path | None:
        """Replace ``final`` by ``staged`` with renames; returns where the old folder went."""
        final.parent.mkdir(parents=True, exist_ok=True)
        trash = None
        if final.exists():
            trash = self.state / "tmp" / f"old-{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
        os.replace(staged, final)
        return trash

    @staticmethod
    def _restore(final: Path, trash: Path | None) -> None:
        shutil.rmtree(final, ignore_errors=True)
        if trash is not None:
            os.replace(trash, final)

    # -- queries -------------------------------------------------------------------------------
    def versions(self, ref: ArtifactRef | None = None) -> list[ArtifactVersion]:
        """All registered versions (of one artifact, or of all), oldest first per artifact."""
        pattern = f"{ref.kind}/{ref.name}/v*" if ref else "*/*/v*"
        found = []
        for tag in self.git.list_tags(pattern):
            match = re.match(r"^([a-z]+)/([^/]+)/v(\d+)$", tag.name)
            if not match or match[1] not in KINDS:
                continue
            found.append(ArtifactVersion(match[1], match[2], int(match[3]), tag.commit, tag.name, tag.date))
        found.sort(key=lambda v: (v.kind, v.name, v.version))
        return found

    def history(self, ref: ArtifactRef | None = None) -> list[ArtifactVersion]:
        """Registered versions newest first: by registration time, then (several in one second) by
        commit order, newest commit first."""
        versions = self.versions(ref)
        position: dict[str, int] = {}
        commits = sorted({v.commit for v in versions})
        if commits:
            try:
                listed = self.git.git("rev-list", "--topo-order", *commits).split()
                position = {sha: i for i, sha in enumerate(listed)}
            except Exception:  # a tag on a commit git cannot walk: time alone decides
                position = {}

        def when(v: ArtifactVersion) -> float:
            try:
                return _dt.datetime.fromisoformat(v.date).timestamp()
            except ValueError:
                return 0.0

        return sorted(versions, key=lambda v: (-when(v), position.get(v.commit, 0), -v.version))

    def latest_version(self, ref: ArtifactRef) -> int:
        versions = self.versions(ArtifactRef(ref.kind, ref.name))
        return versions[-1].version if versions else 0

    def get(self, ref: ArtifactRef) -> ArtifactVersion:
        """One version with its manifest (the latest when ``ref.version`` is None)."""
        versions = self.versions(ArtifactRef(ref.kind, ref.name))
        if not versions:
            raise UsageError(
                f"no versions of {ref.key} are registered",
                hint="'llmops log' lists the registered artifacts.",
            )
        if ref.version is None:
            chosen = versions[-1]
        else:
            matches = [v for v in versions if v.version == ref.version]
            if not matches:
                have = ", ".join(f"v{v.version}" for v in versions)
                raise UsageError(f"{ref.key} has no v{ref.version} (it has {have})")
            chosen = matches[0]
        chosen.manifest = self.read_manifest(chosen)
        return chosen

    def manifest_path(self, kind: str, name: str) -> str:
        return f"{self.git.relpath(self.folder(kind, name))}/{MANIFEST}"

    def read_manifest(self, version: ArtifactVersion) -> dict[str, Any]:
        text = self.git.show_file(version.commit, self.manifest_path(version.kind, version.name))
        if text is None:
            raise VersioningError(f"{version.tag}: {MANIFEST} is missing from commit {version.commit[:10]}")
        try:
            manifest = json.loads(text)
        except ValueError as exc:
            raise VersioningError(f"{version.tag}: {MANIFEST} is not valid JSON ({exc})") from None
        if not isinstance(manifest, dict):
            raise VersioningError(f"{version.tag}: {MANIFEST} is not a JSON object")
        return manifest

    # -- checkout ------------------------------------------------------------------------------
    def checkout(self, ref: ArtifactRef) -> ArtifactVersion:
        """Restore the artifact's folder in the work tree to ``ref``'s version (files from the store)."""
        version = self.get(ref)
        folder = self.folder(ref.kind, ref.name)
        git_dir = self.git.relpath(folder)
        with self.lock():
            staged = self.state / "tmp" / f"checkout-{uuid.uuid4().hex[:8]}"
            staged.mkdir(parents=True)
            try:
                for _mode, blob, path in self.git.ls_tree(version.commit, git_dir):
                    rel = path[len(git_dir) + 1 :]
                    dest = staged / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    data = self.git.blob_bytes(blob)
                    dest.write_bytes(data)
                    if rel.endswith(POINTER_SUFFIX):
                        ptr = Pointer.loads(data.decode("utf-8", "replace"), origin=f"{path} in {version.tag}")
                        self.store.copy_out(ptr.sha256, staged / rel[: -len(POINTER_SUFFIX)])
            except BaseException:
                shutil.rmtree(staged, ignore_errors=True)
                raise
            trash = self._swap_in(staged, folder)
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        return version

    def referenced_objects(self, *, all_versions: bool = False) -> dict[str, int]:
        """``sha -> size`` of store objects the current (or every registered) version points to."""
        wanted: dict[str, int] = {}
        if all_versions:
            for version in self.versions():
                for entry in self.read_manifest(version).get("files", []):
                    if isinstance(entry, dict) and entry.get("stored"):
                        origin = f"{version.tag}: {MANIFEST} entry {str(entry.get('path'))[:60]!r}"
                        wanted[check_digest(entry.get("sha256"), origin=origin)] = int(entry.get("size") or 0)
            return wanted
        base = self.project_root / self.artifacts_dir
        for ptr_file in base.rglob("*" + POINTER_SUFFIX) if base.is_dir() else []:
            ptr = Pointer.loads(ptr_file.read_text(errors="replace"), origin=str(ptr_file))
            wanted[ptr.sha256] = ptr.size
        return wanted
