"""Core layer: artifact versions in real temporary git repositories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmops_cli.errors import UnavailableError, UsageError, VersioningError
from llmops_cli.versioning import ArtifactRef, ArtifactRegistry, Input, parse_trailers, sha256_file
from llmops_cli.versioning import remote as remote_mod
from tests.helpers import git

THRESHOLD = 1024


@pytest.fixture
def registry(project: Path) -> ArtifactRegistry:
    return ArtifactRegistry(project, threshold=THRESHOLD)


def _files(tmp_path: Path, small: str, big_seed: int) -> dict[str, Path]:
    src = tmp_path / f"src-{big_seed}"
    src.mkdir()
    (src / "config.json").write_text(small)
    (src / "weights.bin").write_bytes(os.urandom(8) + bytes([big_seed]) * 5000)
    return {"adapter_config.json": src / "config.json", "weights/model.bin": src / "weights.bin"}


def test_register_twice_show_checkout_and_user_work_untouched(
    registry: ArtifactRegistry, project: Path, tmp_path: Path
) -> None:
    # The user has unrelated work in progress: a staged edit, an unstaged edit, an untracked file.
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "staged line\n")
    git(project, "add", "README.md")
    readme.write_text(readme.read_text() + "unstaged line\n")
    prompt = project / "prompts" / "answer.yaml"
    prompt.write_text(prompt.read_text() + "# unstaged comment\n")
    (project / "notes.txt").write_text("untracked\n")
    status_before = git(project, "status", "--porcelain")
    staged_before = git(project, "diff", "--cached")
    unstaged_before = git(project, "diff")

    v1_files = _files(tmp_path, '{"r": 8}', 1)
    v1 = registry.register(
        "adapter", "faq", v1_files,
        inputs=[Input("dataset/train@v1", "sha256:" + "a" * 64)],
        config_hash="sha256:" + "c" * 64, metrics={"eval_loss": 1.25},
    )  # fmt: skip
    v2 = registry.register("adapter", "faq", _files(tmp_path, '{"r": 16}', 2), metrics={"eval_loss": 0.9})
    assert (v1.version, v2.version) == (1, 2)
    assert git(project, "tag", "--list", "adapter/faq/*").split() == ["adapter/faq/v1", "adapter/faq/v2"]
    assert git(project, "cat-file", "-t", "adapter/faq/v1").strip() == "tag"  # annotated

    # Only llmops' folder was committed; the user's changes are exactly as they were.
    committed = git(project, "show", "--name-only", "--format=", "adapter/faq/v1^{commit}").split()
    assert all(p.startswith("artifacts/adapter/faq/") for p in committed)
    assert git(project, "diff", "--cached") == staged_before
    assert git(project, "diff") == unstaged_before
    assert git(project, "status", "--porcelain") == status_before
    assert len(git(project, "log", "--oneline").splitlines()) == 3

    # The big file is in the store, with a pointer committed and the file itself ignored.
    folder = project / "artifacts" / "adapter" / "faq"
    assert "weights/model.bin.ptr" in [p.split("artifacts/adapter/faq/")[1] for p in committed]
    assert "weights/model.bin" not in [p.split("artifacts/adapter/faq/")[1] for p in committed]
    big_v1 = v1_files["weights/model.bin"].read_bytes()
    assert registry.store.has(sha256_file(v1_files["weights/model.bin"]))

    # Trailers carry the lineage.
    message = git(project, "log", "-1", "--format=%B", "adapter/faq/v1")
    trailers = parse_trailers(message)
    assert trailers["Llmops-Artifact"] == ["adapter/faq"]
    assert trailers["Llmops-Version"] == ["1"]
    assert trailers["Llmops-Input"] == ["dataset/train@v1 sha256:" + "a" * 64]
    assert trailers["Llmops-Config-Hash"] == ["sha256:" + "c" * 64]
    assert any(lib.startswith("llmops==") for lib in trailers["Llmops-Library"])

    shown = registry.get(ArtifactRef.parse("adapter/faq@v1"))
    assert shown.commit == v1.commit and shown.manifest["metrics"] == {"eval_loss": 1.25}
    assert {f["path"]: f["stored"] for f in shown.manifest["files"]} == {
        "adapter_config.json": False, "weights/model.bin": True}  # fmt: skip
    assert registry.get(ArtifactRef.parse("adapter/faq")).version == 2

    # checkout @v1 restores v1 (the big file from the store) ...
    registry.checkout(ArtifactRef.parse("adapter/faq@v1"))
    assert (folder / "adapter_config.json").read_text() == '{"r": 8}'
    assert (folder / "weights" / "model.bin").read_bytes() == big_v1
    # ... even when the work-tree copy is gone
    (folder / "weights" / "model.bin").unlink()
    registry.checkout(ArtifactRef.parse("adapter/faq@v1"))
    assert (folder / "weights" / "model.bin").read_bytes() == big_v1
    registry.checkout(ArtifactRef.parse("adapter/faq@v2"))
    assert (folder / "adapter_config.json").read_text() == '{"r": 16}'
    assert git(project, "diff", "--cached") == staged_before
    assert git(project, "diff") == unstaged_before


def test_checkout_without_store_object_says_pull(registry: ArtifactRegistry, tmp_path: Path) -> None:
    files = _files(tmp_path, "{}", 3)
    registry.register("adapter", "faq", files)
    sha = sha256_file(files["weights/model.bin"])
    obj = registry.store.object_path(sha)
    os.chmod(obj, 0o644)
    obj.unlink()
    with pytest.raises(UnavailableError) as info:
        registry.checkout(ArtifactRef.parse("adapter/faq@v1"))
    assert "llmops pull" in (info.value.hint or "")
    # The failed checkout left the work tree copy alone.
    assert (registry.folder("adapter", "faq") / "weights" / "model.bin").exists()


def test_push_pull_through_a_remote_directory(registry: ArtifactRegistry, tmp_path: Path) -> None:
    files = _files(tmp_path, "{}", 4)
    registry.register("adapter", "faq", files)
    remote = tmp_path / "remote"
    objects = registry.referenced_objects(all_versions=True)
    assert len(objects) == 1
    pushed = remote_mod.push(registry.store, str(remote), objects)
    assert len(pushed.copied) == 1
    assert remote_mod.push(registry.store, str(remote), objects).skipped == list(objects)
    # Lose the local store, then pull it back; the object is verified by hash.
    for sha in objects:
        os.chmod(registry.store.object_path(sha), 0o644)
        registry.store.object_path(sha).unlink()
    pulled = remote_mod.pull(registry.store, str(remote), objects)
    assert pulled.copied == list(objects)
    assert all(registry.store.has(sha) for sha in objects)


def test_pull_rejects_a_corrupt_remote_object(registry: ArtifactRegistry, tmp_path: Path) -> None:
    files = _files(tmp_path, "{}", 5)
    registry.register("adapter", "faq", files)
    remote = tmp_path / "remote"
    objects = registry.referenced_objects()
    remote_mod.push(registry.store, str(remote), objects)
    (sha,) = objects
    remote_obj = remote / "objects" / sha[:2] / sha[2:]
    os.chmod(remote_obj, 0o644)
    remote_obj.write_bytes(b"tampered")
    os.chmod(registry.store.object_path(sha), 0o644)
    registry.store.object_path(sha).unlink()
    with pytest.raises(VersioningError, match="corrupt"):
        remote_mod.pull(registry.store, str(remote), objects)
    assert not registry.store.has(sha)


def test_project_in_a_subdirectory_of_the_repo(tmp_path: Path) -> None:
    from llmops_cli.scaffold import init_project

    repo = tmp_path / "mono"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "other.txt").write_text("x\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-qm", "first")
    init_project(repo / "apps" / "bot", name="bot")
    reg = ArtifactRegistry(repo / "apps" / "bot")
    src = tmp_path / "r.json"
    src.write_text(json.dumps({"rougeL": 0.4}))
    version = reg.register("eval", "quality", {"results.json": src})
    names = git(repo, "show", "--name-only", "--format=", version.tag + "^{commit}").split()
    assert names == ["apps/bot/artifacts/eval/quality/artifact.json", "apps/bot/artifacts/eval/quality/results.json"]
    assert reg.get(ArtifactRef.parse("eval/quality")).manifest["artifact"] == "eval/quality"


def test_not_a_git_repo(tmp_path: Path) -> None:
    reg = ArtifactRegistry(tmp_path)
    src = tmp_path / "f.txt"
    src.write_text("x")
    with pytest.raises(VersioningError, match="not inside a git repository"):
        reg.register("dataset", "d", {"f.txt": src})


def test_bad_refs_and_paths(registry: ArtifactRegistry, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        ArtifactRef.parse("adapters/faq")
    assert ArtifactRef.parse("adapter/faq@v3").version == 3
    src = tmp_path / "f.txt"
    src.write_text("x")
    with pytest.raises(UsageError):
        registry.register("adapter", "faq", {"../escape.txt": src})
    with pytest.raises(UsageError, match="no versions"):
        registry.get(ArtifactRef.parse("adapter/none"))
    registry.register("adapter", "faq", {"f.txt": src})
    with pytest.raises(UsageError, match="has no v9"):
        registry.get(ArtifactRef.parse("adapter/faq@v9"))


def test_state_dir_ignores_itself(registry: ArtifactRegistry, project: Path, tmp_path: Path) -> None:
    registry.register("adapter", "faq", _files(tmp_path, "{}", 6))
    assert (project / ".llmops" / ".gitignore").read_text().strip().endswith("*")
    assert ".llmops" not in git(project, "status", "--porcelain", "--ignored=no")


def test_log_lists_newest_first_by_time(
    registry: ArtifactRegistry, project: Path, tmp_path: Path, cli: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered in a known order across kinds and names (some in the same second): `llmops log`
    shows them newest first, not grouped by kind and name."""
    order = [("dataset", "zeta"), ("adapter", "faq"), ("eval", "alpha"), ("adapter", "faq"), ("dataset", "zeta")]
    for i, (kind, name) in enumerate(order):
        # the first three an hour apart (tags take the committer date), the last two in the same second
        stamp = f"2026-01-01T0{min(i, 3)}:00:00+00:00"
        monkeypatch.setenv("GIT_COMMITTER_DATE", stamp)
        registry.register(kind, name, {"a.txt": _small(tmp_path, f"{kind}{name}{i}")})
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    expected = ["dataset/zeta v2", "adapter/faq v2", "eval/alpha v1", "adapter/faq v1", "dataset/zeta v1"]
    assert [f"{v.key} v{v.version}" for v in registry.history()] == expected
    result = cli("log", "--json", cwd=project)  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    assert [f"{row['artifact']} v{row['version']}" for row in json.loads(result.stdout)] == expected
    table = cli("log", cwd=project)  # type: ignore[operator]
    rows = [line for line in table.stdout.splitlines() if " v1 " in line or " v2 " in line]
    assert [" ".join(r.replace("│", " ").split()[:2]) for r in rows] == expected


def _small(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"{text}.txt"
    path.write_text(text)
    return path
