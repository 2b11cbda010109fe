"""``llmops add``: version any file or folder with the store, pointers, tags and lineage; reuse when unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmops_cli.versioning import ArtifactRef, ArtifactRegistry
from llmops_cli.versioning import hashcache as hashcache_mod
from llmops_cli.versioning.hashcache import HashCache
from tests.helpers import git


def _big(path: Path, size: int = 2 * 1024 * 1024) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def test_add_a_file_registers_store_pointer_tag_then_reuses(project: Path, cli) -> None:
    weights = _big(project / "downloads" / "model.safetensors")
    result = cli("add", "downloads/model.safetensors", "--kind", "model", "--name", "team-model", cwd=project)
    assert result.exit_code == 0, result.output
    assert "registered model/team-model/v1" in result.output and "1 in the content store" in result.output
    folder = project / "artifacts" / "model" / "team-model"
    pointer = json.loads((folder / "model.safetensors.ptr").read_text())
    registry = ArtifactRegistry(project)
    assert registry.store.has(pointer["sha256"]) and pointer["size"] == weights.stat().st_size
    assert (folder / "model.safetensors").read_bytes() == weights.read_bytes()
    committed = git(project, "show", "--name-only", "--format=", "model/team-model/v1").split()
    assert "artifacts/model/team-model/model.safetensors.ptr" in committed
    assert "artifacts/model/team-model/model.safetensors" not in committed  # the big file is git-ignored
    assert registry.get(ArtifactRef.parse("model/team-model")).manifest["params"]["source"] == (
        "downloads/model.safetensors"
    )

    again = cli("add", "downloads/model.safetensors", "--kind", "model", "--name", "team-model", "--json", cwd=project)
    assert again.exit_code == 0, again.output
    doc = json.loads(again.output)
    assert doc["reused"] is True and doc["version"] == 1
    assert [v.version for v in registry.versions(ArtifactRef("model", "team-model"))] == [1]

    with open(weights, "r+b") as handle:  # same size, other bytes
        handle.write(b"\0" * 16)
    changed = cli("add", "downloads/model.safetensors", "--kind", "model", "--name", "team-model", cwd=project)
    assert "registered model/team-model/v2" in changed.output
    checkout = cli("checkout", "model/team-model@v1", cwd=project)
    assert checkout.exit_code == 0, checkout.output
    assert (folder / "model.safetensors").read_bytes()[:16] != b"\0" * 16


def test_add_a_folder_with_lineage_and_default_name(project: Path, cli) -> None:
    report = project / "reports" / "q3"
    (report / "figs").mkdir(parents=True)
    (report / "index.html").write_text("<h1>q3</h1>")
    (report / "figs" / "a.png").write_bytes(b"png")
    result = cli("add", "reports/q3", "--kind", "report", "--input", "data/eval.jsonl", cwd=project)
    assert result.exit_code == 0, result.output
    assert "registered report/q3/v1: 2 file(s)" in result.output
    first = cli("add", "reports/q3", "--kind", "report", "--name", "summary", "--input", "report/q3", cwd=project)
    assert first.exit_code == 0, first.output
    manifest = ArtifactRegistry(project).get(ArtifactRef.parse("report/summary")).manifest
    assert sorted(f["path"] for f in manifest["files"]) == ["figs/a.png", "index.html"]
    assert [i["ref"] for i in manifest["inputs"]] == ["report/q3@v1"]
    assert manifest["inputs"][0]["hash"].startswith("sha256:")
    trailers = git(project, "log", "-1", "--format=%B", "report/summary/v1")
    assert "Llmops-Input: report/q3@v1 sha256:" in trailers
    shown = cli("log", "report/q3", "--json", cwd=project)
    assert json.loads(shown.output)[0]["inputs"][0]["ref"] == "data/eval.jsonl"

    # Re-adding the artifact's own folder in place (after an edit) skips artifact.json and pointers.
    own = project / "artifacts" / "report" / "q3"
    (own / "index.html").write_text("<h1>q3, revised</h1>")
    in_place = cli("add", str(own), "--kind", "report", "--name", "q3", "--input", "data/eval.jsonl", cwd=project)
    assert "registered report/q3/v2: 2 file(s)" in in_place.output, in_place.output


def test_unchanged_rerun_decides_before_copying(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.versioning.add import add_path

    source = _big(project / "downloads" / "w.bin")
    registry = ArtifactRegistry(project)
    assert add_path(registry, source, "model", "w").reused is False
    monkeypatch.setattr(hashcache_mod, "RACY_SECONDS", 0.0)  # the file was written a moment ago

    def no_register(*_a: object, **_k: object) -> None:
        raise AssertionError("an unchanged add must not register (copy) anything")

    monkeypatch.setattr(ArtifactRegistry, "register", no_register)
    assert add_path(registry, source, "model", "w").reused is True  # hashed once, remembered

    def no_read(path: Path) -> str:
        raise AssertionError(f"{path} was read although its stat did not change")

    monkeypatch.setattr(hashcache_mod, "sha256_file", no_read)
    result = add_path(registry, source, "model", "w")  # answered from the stat cache: not even read
    assert result.reused is True and result.version.version == 1


def test_hash_cache_sees_same_size_rewrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashcache_mod, "RACY_SECONDS", 0.0)
    cache = HashCache(tmp_path / "state")
    target = tmp_path / "f.bin"
    target.write_bytes(b"a" * 100)
    first = cache.sha256(target)
    assert cache.sha256(target) == first and cache.hits == 1
    target.write_bytes(b"b" * 100)  # same size: mtime/ctime move
    assert cache.sha256(target) != first and cache.misses == 2


def test_racy_files_are_not_cached(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "state")
    target = tmp_path / "f.bin"
    target.write_bytes(b"fresh")
    cache.sha256(target)
    assert cache.lookup(target) is None  # written less than RACY_SECONDS ago


def test_a_file_llmops_wrote_is_remembered_once_the_clock_moved_past_it(tmp_path: Path) -> None:
    import hashlib
    import time

    cache = HashCache(tmp_path / "state")
    target = tmp_path / "f.bin"
    target.write_bytes(b"written by llmops")
    sha = hashlib.sha256(b"written by llmops").hexdigest()
    time.sleep(0.05)  # a filesystem clock tick at most (ns timestamps here)
    clock = cache.clock()
    cache.remember_written(target, sha, clock)
    assert cache.lookup(target) == sha  # not RACY_SECONDS later: the filesystem clock vouches
    target.write_bytes(b"changed after the clock was read")
    cache.remember_written(target, "0" * 64, clock)
    assert cache.lookup(target) is None  # changed at or after the clock: not recorded, stat differs
    other = tmp_path / "g.bin"
    other.write_bytes(b"x")
    cache.remember_written(other, hashlib.sha256(b"x").hexdigest(), cache.clock())  # same tick, likely
    assert cache.lookup(other) in (None, hashlib.sha256(b"x").hexdigest())
    cache.remember_written(other, "f" * 64, (clock[0] + 1, clock[1]) if clock else None)  # another device
    assert cache.lookup(other) != "f" * 64


def test_registered_files_are_in_the_hash_cache_right_away(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    registry = ArtifactRegistry(project)
    source = _big(project / "w.bin")
    staged = registry._stage

    def stage_then_wait(*args: object, **kwargs: object) -> object:
        result = staged(*args, **kwargs)  # type: ignore[arg-type]
        time.sleep(0.05)  # large files take longer than a clock tick to stage; a small one may not
        return result

    monkeypatch.setattr(registry, "_stage", stage_then_wait)
    version = registry.register("model", "w", {"w.bin": source})
    stored = registry.folder("model", "w") / "w.bin"
    cache = HashCache(registry.state)
    assert cache.lookup(stored) == version.manifest["files"][0]["sha256"]
    assert cache.sha256(stored) and cache.hits == 1 and cache.misses == 0


def test_add_errors_are_clear(project: Path, cli) -> None:
    missing = cli("add", "nope.bin", "--kind", "model", cwd=project)
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (project / "x.txt").write_text("x")
    kind = cli("add", "x.txt", "--kind", "bogus", cwd=project)
    assert kind.exit_code == 2 and "unknown artifact kind 'bogus'" in kind.output
    whole = cli("add", ".", "--kind", "file", "--name", "everything", cwd=project)
    assert whole.exit_code == 2 and "contains the artifact's own folder" in whole.output
    bad_input = cli("add", "x.txt", "--kind", "file", "--input", "model/none", cwd=project)
    assert bad_input.exit_code == 2 and "no versions of model/none" in bad_input.output


def test_hash_cache_keeps_the_state_folder_ignored(project: Path) -> None:
    state = project / ".llmops"
    assert not state.exists()
    (project / "f.txt").write_text("x")
    HashCache(state).sha256(project / "f.txt")
    assert git(project, "status", "--porcelain") == "?? f.txt\n"  # .llmops/ ignores itself
