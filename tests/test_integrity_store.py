"""Integrity of the content store: crafted pointers, corrupt objects, atomic registration."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from llmops_cli.errors import EXIT_VERSIONING, VersioningError
from llmops_cli.versioning import ArtifactRef, ArtifactRegistry, Pointer, sha256_file
from llmops_cli.versioning import remote as remote_mod
from llmops_cli.versioning.store import CorruptObjectError
from tests.helpers import git

THRESHOLD = 1024


@pytest.fixture
def registry(project: Path) -> ArtifactRegistry:
    return ArtifactRegistry(project, threshold=THRESHOLD)


def _files(tmp_path: Path, seed: int, count: int = 1) -> dict[str, Path]:
    src = tmp_path / f"src-{seed}"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"seed": seed}))
    files = {"adapter_config.json": src / "config.json"}
    for i in range(count):
        (src / f"w{i}.bin").write_bytes(os.urandom(16) + bytes([seed % 256, i]) * 3000)
        files[f"weights/w{i}.bin"] = src / f"w{i}.bin"
    return files


def _writable(path: Path) -> Path:
    os.chmod(path, 0o644)
    return path


def _llmops_commits(project: Path) -> list[str]:
    return [line for line in git(project, "log", "--format=%H %s").splitlines() if " llmops: adapter/" in line]


# -- crafted pointers ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad_sha", ["..//{secret}", "../../../../{secret}", "A" * 64, "zz" + "0" * 62, 42])
def test_pointer_sha_must_be_a_digest(bad_sha: object, tmp_path: Path) -> None:
    text = json.dumps({"llmops-pointer": 1, "path": "w.bin", "sha256": bad_sha, "size": 3})
    with pytest.raises(VersioningError, match="not a sha256 digest"):
        Pointer.loads(text, origin="x.ptr")


@pytest.mark.parametrize("field,value", [("path", "../w.bin"), ("path", "a/b"), ("size", -1), ("size", "3")])
def test_pointer_path_and_size_are_checked(field: str, value: object) -> None:
    body = {"llmops-pointer": 1, "path": "w.bin", "sha256": "a" * 64, "size": 3, field: value}
    with pytest.raises(VersioningError, match=field):
        Pointer.loads(json.dumps(body), origin="x.ptr")


def _craft_version(registry: ArtifactRegistry, project: Path, secret: Path) -> None:
    """Commit a v2 whose pointer names a file outside the store, tagged like a real version."""
    folder = registry.folder("adapter", "faq")
    ptr = folder / "weights" / "w0.bin.ptr"
    body = json.loads(ptr.read_text())
    body["sha256"] = f"..//{secret}"  # old code: objects/'..'/'/abs/path' == /abs/path
    ptr.write_text(json.dumps(body))
    manifest = json.loads((folder / "artifact.json").read_text())
    manifest["files"][1]["sha256"] = body["sha256"]
    manifest["version"] = 2
    (folder / "artifact.json").write_text(json.dumps(manifest))
    git(project, "add", str(ptr), str(folder / "artifact.json"))
    git(project, "commit", "-qm", "crafted")
    git(project, "tag", "-a", "adapter/faq/v2", "-m", "crafted")


def test_crafted_pointer_is_refused_by_checkout_and_push(
    registry: ArtifactRegistry, project: Path, tmp_path: Path, cli
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    registry.register("adapter", "faq", _files(tmp_path, 1))
    _craft_version(registry, project, secret)
    target = registry.folder("adapter", "faq") / "weights" / "w0.bin"
    before = target.read_bytes()

    result = cli("checkout", "adapter/faq@v2", cwd=project)
    assert result.exit_code == EXIT_VERSIONING, result.output
    assert "is not a sha256 digest" in result.output and "internal error" not in result.output
    assert target.read_bytes() == before  # the outside file was not copied in
    assert b"top secret" not in target.read_bytes()

    remote = tmp_path / "remote"
    result = cli("push", "--remote", str(remote), cwd=project)
    assert result.exit_code == EXIT_VERSIONING, result.output
    assert "not a sha256 digest" in result.output
    uploaded = [p for p in remote.rglob("*") if p.is_file()] if remote.exists() else []
    assert all(b"top secret" not in p.read_bytes() for p in uploaded)


def test_crafted_manifest_digest_is_refused_by_pull_all(
    registry: ArtifactRegistry, project: Path, tmp_path: Path
) -> None:
    registry.register("adapter", "faq", _files(tmp_path, 2))
    folder = registry.folder("adapter", "faq")
    manifest = json.loads((folder / "artifact.json").read_text())
    manifest["files"][1]["sha256"] = "../../../etc/passwd"
    (folder / "artifact.json").write_text(json.dumps(manifest))
    git(project, "commit", "-qam", "crafted manifest")
    git(project, "tag", "-a", "adapter/faq/v2", "-m", "crafted")
    with pytest.raises(VersioningError, match="not a sha256 digest") as info:
        registry.referenced_objects(all_versions=True)
    assert info.value.exit_code == EXIT_VERSIONING


# -- corrupt objects -----------------------------------------------------------------------------


def test_corrupt_local_object_is_not_checked_out(
    registry: ArtifactRegistry, project: Path, tmp_path: Path, cli
) -> None:
    files = _files(tmp_path, 3)
    registry.register("adapter", "faq", files)
    remote = tmp_path / "remote"
    remote_mod.push(registry.store, str(remote), registry.referenced_objects())
    sha = sha256_file(files["weights/w0.bin"])
    _writable(registry.store.object_path(sha)).write_bytes(b"bit rot")
    work = registry.folder("adapter", "faq") / "weights" / "w0.bin"
    work.unlink()

    result = cli("checkout", "adapter/faq@v1", cwd=project)
    assert result.exit_code == EXIT_VERSIONING, result.output
    assert f"object {sha[:12]}" in result.output and "is corrupt" in result.output
    assert "llmops pull" in result.output
    assert not work.exists()  # nothing damaged was restored
    assert not registry.store.has(sha)  # moved aside, so pull fetches a good copy
    assert len(list((registry.store.root / "corrupt").iterdir())) == 1

    assert cli("pull", "--remote", str(remote), cwd=project).exit_code == 0
    assert cli("checkout", "adapter/faq@v1", cwd=project).exit_code == 0
    assert work.read_bytes() == files["weights/w0.bin"].read_bytes()


def test_corrupt_local_object_is_not_pushed(registry: ArtifactRegistry, project: Path, tmp_path: Path, cli) -> None:
    files = _files(tmp_path, 4, count=2)
    registry.register("adapter", "faq", files)
    bad = sha256_file(files["weights/w0.bin"])
    good = sha256_file(files["weights/w1.bin"])
    _writable(registry.store.object_path(bad)).write_bytes(b"bit rot")
    remote = tmp_path / "remote"

    result = cli("push", "--remote", str(remote), cwd=project)
    assert result.exit_code == EXIT_VERSIONING, result.output
    assert f"{bad[:12]}… is corrupt" in result.output and "1 copied" in result.output
    remote_files = {p.parent.name + p.name for p in (remote / "objects").rglob("*") if p.is_file()}
    assert remote_files == {good}  # the good one went up, the bad one (and no temp file) did not
    assert not registry.store.has(bad)


def test_pull_reports_every_corrupt_object(registry: ArtifactRegistry, project: Path, tmp_path: Path, cli) -> None:
    files = _files(tmp_path, 5, count=3)
    registry.register("adapter", "faq", files)
    remote = tmp_path / "remote"
    objects = registry.referenced_objects()
    remote_mod.push(registry.store, str(remote), objects)
    shas = [sha256_file(files[f"weights/w{i}.bin"]) for i in range(3)]
    for sha in shas:
        _writable(registry.store.object_path(sha)).unlink()
    for sha in shas[:2]:
        _writable(remote / "objects" / sha[:2] / sha[2:]).write_bytes(b"tampered " + sha.encode())

    result = cli("pull", "--remote", str(remote), cwd=project)
    assert result.exit_code == EXIT_VERSIONING, result.output
    flat = " ".join(result.output.split())
    assert "2 object(s) failed verification" in flat and "1 copied" in flat
    assert all(f"{sha[:12]}… is corrupt" in flat for sha in shas[:2])
    assert not registry.store.has(shas[0]) and not registry.store.has(shas[1])
    assert registry.store.has(shas[2])
    assert not any((registry.store.root / "tmp").iterdir())  # no half-downloaded file left


def test_store_put_hashes_while_copying(registry: ArtifactRegistry, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"x" * 5000)
    with pytest.raises(VersioningError, match="changed while it was being stored"):
        registry.store.put(source, "0" * 64)
    assert not registry.store.has("0" * 64)
    sha = registry.store.put(source)
    assert sha == sha256_file(source) and registry.store.has(sha)
    with pytest.raises(CorruptObjectError):
        dest = tmp_path / "out.bin"
        _writable(registry.store.object_path(sha)).write_bytes(b"y")
        registry.store.copy_out(sha, dest)


def test_store_reads_verify_what_they_return(registry: ArtifactRegistry, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"x" * 5000)
    sha = registry.store.put(source)
    assert registry.store.read_verified(sha) == source.read_bytes()
    assert registry.store.verified_path(sha) == registry.store.object_path(sha)
    _writable(registry.store.object_path(sha)).write_bytes(b"y" * 5000)
    with pytest.raises(CorruptObjectError, match="is corrupt"):
        registry.store.read_verified(sha)
    assert not registry.store.has(sha)  # moved aside: 'llmops pull' fetches a good copy
    from llmops_cli.errors import UnavailableError

    for read in (registry.store.read_verified, registry.store.verified_path):
        with pytest.raises(UnavailableError, match="not in the local store"):
            read(sha)


def test_eval_baseline_from_the_store_is_verified(registry: ArtifactRegistry, tmp_path: Path) -> None:
    from llmops_cli.evals.history import RESULTS_FILE, _committed_text

    results = tmp_path / RESULTS_FILE
    results.write_text(json.dumps({"suites": [{"suite": "quality", "cases": ["case"] * 400}]}))
    version = registry.register("eval", "quality", {RESULTS_FILE: results})
    path = f"{registry.git.relpath(registry.folder('eval', 'quality'))}/{RESULTS_FILE}"
    assert registry.git.show_file(version.commit, path) is None  # above the threshold: a pointer in git
    assert _committed_text(registry, version.commit, path) == results.read_text()

    sha = sha256_file(results)
    _writable(registry.store.object_path(sha)).write_text(json.dumps({"suites": []}).ljust(2000))
    with pytest.raises(CorruptObjectError, match="is corrupt") as info:
        _committed_text(registry, version.commit, path)
    assert info.value.exit_code == EXIT_VERSIONING and "llmops pull" in (info.value.hint or "")
    assert not registry.store.has(sha)


# -- registration killed at each git step -----------------------------------------------------------


def _register_killed_after(registry: ArtifactRegistry, files: dict[str, Path], step: int) -> None:
    """Run ``register`` in a forked child that SIGKILLs itself right after its ``step``-th git call."""
    from llmops_cli.versioning import gitrepo

    pid = os.fork()
    if pid == 0:  # child: no cleanup handlers may run, like a real kill -9
        try:
            original = gitrepo.GitRepo.git
            calls = [0]

            def git_then_die(self: gitrepo.GitRepo, *args: str, **kwargs: object) -> str:
                out = original(self, *args, **kwargs)  # type: ignore[arg-type]
                calls[0] += 1
                if calls[0] == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return out

            gitrepo.GitRepo.git = git_then_die  # type: ignore[method-assign]
            ArtifactRegistry(registry.project_root, threshold=THRESHOLD).register("adapter", "faq", files)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0


def _count_git_calls(registry: ArtifactRegistry, files: dict[str, Path]) -> int:
    from llmops_cli.versioning import gitrepo

    original, calls = gitrepo.GitRepo.git, [0]

    def counting(self: gitrepo.GitRepo, *args: str, **kwargs: object) -> str:
        calls[0] += 1
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    gitrepo.GitRepo.git = counting  # type: ignore[method-assign]
    try:
        registry.register("adapter", "faq", files)
    finally:
        gitrepo.GitRepo.git = original  # type: ignore[method-assign]
    return calls[0]


def test_registration_killed_at_every_git_step_never_half_registers(
    registry: ArtifactRegistry, project: Path, tmp_path: Path
) -> None:
    steps = _count_git_calls(registry, _files(tmp_path, 10))  # v1, normally
    assert steps >= 8
    expected = 1
    for step in range(1, steps + 1):
        _register_killed_after(registry, _files(tmp_path, 100 + step), step)
        tags = git(project, "tag", "--list", "adapter/faq/*").split()
        commits = _llmops_commits(project)
        # Killed anywhere: each version is one commit and one tag, or neither exists.
        assert len(tags) == len(commits) in (expected, expected + 1), (step, tags, commits)
        assert [v.version for v in registry.versions(ArtifactRef("adapter", "faq"))] == list(range(1, len(tags) + 1))
        expected = len(tags)
        # The rerun makes exactly one new version, committed, tagged and clean in git status.
        version = registry.register("adapter", "faq", _files(tmp_path, 1000 + step))
        expected += 1
        assert version.version == expected
        assert len(git(project, "tag", "--list", "adapter/faq/*").split()) == expected
        assert len(_llmops_commits(project)) == expected
        assert git(project, "status", "--porcelain", "--", "artifacts") == ""
        assert not [p for p in (registry.state / "tmp").iterdir() if p.name.startswith(("register-", "old-"))]
        assert git(project, "rev-parse", f"adapter/faq/v{expected}^{{commit}}").strip() == version.commit
