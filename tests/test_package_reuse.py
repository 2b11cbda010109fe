"""``llmops package`` of an unchanged bundle reuses the latest version before writing anything.

Fixtures come from tests/fixtures/packages.py: a tiny init project with fake weights, a quantized
variant, an adapter and an index built with the hash embedder (nothing loads torch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import llmops_cli.package.build as build_mod
from llmops_cli.errors import UsageError
from llmops_cli.package import build_package
from llmops_cli.validation import load_config
from llmops_cli.versioning import ArtifactRegistry
from llmops_cli.versioning import hashcache as hashcache_mod
from tests.helpers import git


def _build(root: Path, **kwargs: Any) -> Any:
    return build_package(load_config(root), "bot", **kwargs)


def _no_write(*_a: object, **_k: object) -> None:
    raise AssertionError("an unchanged package must not write an archive")


def test_unchanged_rebuild_writes_nothing_and_reads_no_weights(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _build(built)
    assert first.version == "package/bot/v1" and not first.reused
    data = first.archive.read_bytes()
    monkeypatch.setattr(hashcache_mod, "RACY_SECONDS", 0.0)  # the weights were written a moment ago
    monkeypatch.setattr(build_mod, "write_archive", _no_write)
    second = _build(built)  # hashes the files once more and remembers them
    assert second.reused and second.version == "package/bot/v1" and second.sha256 == first.sha256
    assert second.manifest["version"] == 1 and second.size == len(data)
    read: list[str] = []
    original = build_mod.sha256_entry

    def counting(entry: Any, on_bytes: Any = None) -> tuple[str, int]:
        if entry.source is not None:
            read.append(str(entry.source))
        return original(entry, on_bytes)

    monkeypatch.setattr(build_mod, "sha256_entry", counting)
    third = _build(built, output=built.parent / "out" / "bot.tar.gz")
    assert third.reused and third.archive.read_bytes() == data
    assert third.output is not None and third.output.read_bytes() == data
    assert read == []  # every weight, prompt and document hash came from the stat cache
    assert git(built, "tag", "--list", "package/*").split() == ["package/bot/v1"]


def test_reuse_restores_a_missing_archive_from_the_store(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _build(built)
    registry = ArtifactRegistry.for_config(load_config(built))
    if not registry.store.has(first.sha256):  # a small archive is committed to git, not stored
        registry.store.put(first.archive, first.sha256)
    data = first.archive.read_bytes()
    first.archive.unlink()
    monkeypatch.setattr(build_mod, "write_archive", _no_write)
    again = _build(built)
    assert again.reused and again.version == "package/bot/v1" and again.archive.read_bytes() == data


def test_changed_weights_or_compression_still_rebuild(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _build(built)
    monkeypatch.setattr(hashcache_mod, "RACY_SECONDS", 0.0)
    assert _build(built).reused  # caches every hash
    other_level = _build(built, compresslevel=6)  # asked for other bytes: built, registered as v2
    assert not other_level.reused and other_level.version == "package/bot/v2"
    assert other_level.sha256 != first.sha256
    prompt = built / "prompts" / "answer.yaml"
    prompt.write_text(prompt.read_text().replace("concise", "brief"))  # a cached file, edited
    edited = _build(built, compresslevel=6)
    assert not edited.reused and edited.version == "package/bot/v3"


def test_unchanged_rebuild_does_not_open_the_vector_store(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmops_cli.retrieval.retriever as retriever_mod

    first = _build(built)

    def no_chroma(*_a: object, **_k: object) -> None:
        raise AssertionError("an unchanged index must come from the export cache")

    monkeypatch.setattr(retriever_mod, "Retriever", no_chroma)
    again = _build(built)
    assert again.reused and again.sha256 == first.sha256
    doc = next(iter((built / "docs").glob("*.md")))
    doc.write_text(doc.read_text() + "\nOne more line.\n")  # the cached export still checks the documents
    with pytest.raises(UsageError, match="out of date") as info:
        _build(built)
    assert "llmops index kb" in str(info.value.hint)


def test_installed_distributions_key_the_requirements_cache(built: Path) -> None:
    first = _build(built)
    cache = built / ".llmops" / "cache" / "closure.json"
    pinned = json.loads(cache.read_text())
    assert pinned["pinned"] and "pyyaml" in pinned["pinned"]
    pinned["key"] = "stale"  # another set of installed packages: computed again, same pins
    cache.write_text(json.dumps(pinned))
    assert _build(built).sha256 == first.sha256
    assert json.loads(cache.read_text())["key"] != "stale"


def test_an_unchanged_rebuild_skips_the_bundle_config_check(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _build(built)

    def checked(_plan: object) -> None:
        raise AssertionError("a reused version's bundle passed the check when it was built")

    monkeypatch.setattr(build_mod, "check_bundle_config", checked)
    assert _build(built).reused
    (built / "prompts" / "answer.yaml").write_text((built / "prompts" / "answer.yaml").read_text() + "# changed\n")
    with pytest.raises(AssertionError, match="passed the check"):  # new content is still checked
        _build(built)
    assert first.version == "package/bot/v1"


def test_the_llmops_wheel_is_kept_under_a_key_of_its_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.package import requirements

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    requirements.llmops_wheel.cache_clear()
    name, data = requirements.llmops_wheel()
    kept = list((tmp_path / "home" / "wheels").glob("*.whl"))
    assert len(kept) == 1 and kept[0].read_bytes() == data and name.endswith("-py3-none-any.whl")

    def rebuilt(*_a: object) -> bytes:
        raise AssertionError("rebuilt")

    monkeypatch.setattr(requirements, "_build_wheel", rebuilt)
    requirements.llmops_wheel.cache_clear()
    assert requirements.llmops_wheel() == (name, data)  # same sources: read back, not rebuilt
    extra = tmp_path / "extra.py"
    extra.write_text("x = 1\n")
    sources = requirements._wheel_sources()
    added = ("llmops_cli/extra.py", extra, extra.stat().st_size, extra.stat().st_mtime_ns)
    monkeypatch.setattr(requirements, "_wheel_sources", lambda: [*sources, added])
    requirements.llmops_wheel.cache_clear()
    with pytest.raises(AssertionError, match="rebuilt"):  # another source set: another key
        requirements.llmops_wheel()
    requirements.llmops_wheel.cache_clear()


def test_the_wheel_sources_are_the_files_rglob_finds(tmp_path: Path) -> None:
    from llmops_cli.package import requirements

    (tmp_path / "pkg" / "sub" / "__pycache__").mkdir(parents=True)
    for rel in ("a.py", "b/c.py", "pkg/sub/x.py", "pkg/sub/__pycache__/x.pyc", ".hidden", "pkg/.cfg", "pkg/y.pyc",
                "pkg-z.txt", "pkg/sub/Z.json"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    walked = requirements._walk(tmp_path)
    expected = [
        p for p in sorted(tmp_path.rglob("*"))
        if p.is_file() and not requirements._skipped(p.relative_to(tmp_path))
    ]  # fmt: skip
    assert [path for _rel, path, _size, _mtime in walked] == expected
    assert [rel for rel, *_ in walked] == [p.relative_to(tmp_path).as_posix() for p in expected]
    assert all(size == path.stat().st_size and mtime == path.stat().st_mtime_ns for _r, path, size, mtime in walked)


def test_source_commit_before_any_commit_after_one_and_when_modified(tmp_path: Path) -> None:
    from llmops_cli.package.manifest import SourceCommit, source_commit

    git(tmp_path, "init", "-q", "-b", "main")
    source = tmp_path / "prompt.yaml"
    source.write_text("a\n")
    assert source_commit(tmp_path, [source]) == SourceCommit(None, 0, False)  # unborn branch
    git(tmp_path, "add", "prompt.yaml")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    sha = git(tmp_path, "rev-parse", "HEAD").strip()
    found = source_commit(tmp_path, [source])
    assert (found.commit, found.dirty) == (sha, False) and found.timestamp > 0
    source.write_text("b\n")
    assert source_commit(tmp_path, [source]).dirty
