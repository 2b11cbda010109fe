"""``llmops package``: reproducible archives, verify, inspect, safe unpack, prerequisites, CLI.

The test project is an ``llmops init`` project whose model, quantized variant and adapter are small
fake folders (packaging copies and hashes weights, it never loads them) and whose index is built
with the deterministic hash embedder of ``tests/fixtures/packages.py``, so nothing here loads torch.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.errors import EXIT_USAGE, EXIT_VERSIONING, UsageError, VersioningError
from llmops_cli.package import (
    PackageIntegrityError,
    UnsafeArchiveError,
    build_package,
    prepare_bundle,
    read_manifest,
    unpack,
    verify_package,
)
from llmops_cli.validation import load_config
from llmops_cli.versioning import ArtifactRef, ArtifactRegistry
from tests.fixtures.packages import fake_model_folder, register_folder
from tests.helpers import git


@pytest.fixture
def proj(package_project: Path) -> Path:
    """The init project with fake weights, committed; nothing built yet (tests/fixtures/packages.py)."""
    return package_project


def _build(root: Path, name: str = "bot", **kwargs: Any) -> Any:
    return build_package(load_config(root), name, **kwargs)


# --- build: reproducible, versioned, a valid project -----------------------------------------------


def test_build_twice_gives_identical_bytes_and_one_version(built: Path) -> None:
    first = _build(built)
    assert first.version == "package/bot/v1" and not first.reused
    assert first.archive == built / "artifacts" / "package" / "bot" / "bot.tar.gz"
    data = first.archive.read_bytes()
    second = _build(built)  # HEAD moved (the registration commit): the bytes must not
    assert second.reused and second.version == "package/bot/v1"
    assert second.archive.read_bytes() == data and second.sha256 == first.sha256
    tags = git(built, "tag", "--list", "package/*").split()
    assert tags == ["package/bot/v1"]
    # --output writes the same bytes elsewhere; --no-register ones differ only by the version field.
    copy = _build(built, output=built.parent / "out" / "bot.tar.gz")
    assert copy.output is not None and copy.output.read_bytes() == data


def test_archive_layout_is_normalized(built: Path) -> None:
    result = _build(built)
    raw = result.archive.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[3] & 0x08 == 0  # no file name in the gzip header
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime 0
    manifest = read_manifest(result.archive)
    with tarfile.open(result.archive, "r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "manifest.json" and names[1:] == sorted(names[1:], key=lambda n: n.encode())
    assert {m.uid for m in members} == {0} and {m.uname for m in members} == {""}
    assert {m.mtime for m in members} == {manifest["source_time"]} and manifest["source_time"] > 0
    assert all(m.isreg() for m in members)
    assert {m.name: m.mode for m in members}["serve.py"] == 0o755
    assert {m.mode for m in members if m.name != "serve.py"} == {0o644}
    # The latest commit touching the package's sources: the quantized registration, not the later
    # adapter/lora one (not in this package) nor the package's own registration.
    sources = git(built, "log", "-1", "--format=%H", "--", "llmops.yaml", "prompts", "docs", "artifacts/quantized")
    assert manifest["git_sha"] == sources.strip() and manifest["git_dirty"] is False
    assert git(built, "rev-parse", "HEAD").strip() != manifest["git_sha"]


def test_manifest_lists_every_file_artifact_and_needs(built: Path) -> None:
    result = _build(built)
    manifest = read_manifest(result.archive)
    assert manifest["package"] == "bot" and manifest["version"] == 1 and manifest["project"] == "tiny"
    paths = {f["path"] for f in manifest["files"]}
    assert {"llmops.yaml", "README.md", "Dockerfile", "serve.py", "requirements.txt", "prompts/answer.yaml"} <= paths
    assert {"artifacts/quantized/small-4bit/model.safetensors", "artifacts/index/kb/index.json"} <= paths
    assert {"artifacts/index/kb/vectors/chunks.jsonl", "artifacts/index/kb/vectors/embeddings.npy"} <= paths
    assert any(p.startswith("wheels/llmops_cli-") and p.endswith(".whl") for p in paths)
    assert not any(p.startswith(("artifacts/adapter", "model/base")) for p in paths)  # the package model replaces them
    refs = {a["ref"] for a in manifest["artifacts"]}
    assert {"quantized/small-4bit@v1", "index/kb@v1"} <= refs
    assert all(len(f["sha256"]) == 64 and f["size"] >= 0 for f in manifest["files"])
    hw = manifest["hardware"]
    assert hw["memory_bytes"] > hw["weights_bytes"] > 0 and hw["gpu"]["required"] is False
    assert any("bitsandbytes >= 0.49" in note for note in hw["gpu"]["notes"])
    assert manifest["libraries"]["llmops"]
    # lineage: the registered version's inputs are what it contains
    version = ArtifactRegistry.for_config(load_config(built)).get(ArtifactRef("package", "bot"))
    inputs = {i["ref"] for i in version.manifest["inputs"]}
    assert {"quantized/small-4bit@v1", "index/kb@v1", "prompts/answer.yaml"} <= inputs


def test_bundle_is_a_valid_project_with_the_model_rewritten(built: Path, tmp_path: Path) -> None:
    result = _build(built)
    root = unpack(result.archive, tmp_path / "app")
    config = load_config(root)  # validates
    assert config.models["small-4bit"].source == "artifacts/quantized/small-4bit"
    assert config.models["base"].source == "artifacts/quantized/small-4bit"  # alias (the prompt file says base)
    steps = config.chains["rag"].prompt_steps()
    assert steps[0].model == "small-4bit" and steps[0].adapter is None
    assert "${TINY_URL" not in (root / "llmops.yaml").read_text()  # the unused remote model is left out
    assert set(config.datasets) == {"docs", "eval"}  # documents and the monitor reference, no training data
    assert config.packages["bot"].raw == {
        "chain": "rag",
        "model": "small-4bit",
        "description": "The bot with the 4-bit model.",
    }
    assert set(config.deployments) == {"local"}
    assert (root / "README.md").read_text().startswith("# bot\n")
    assert "--no-deps -r requirements.txt" in (root / "Dockerfile").read_text()
    requirements = (root / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("./wheels/llmops_cli-") for line in requirements)
    assert any(line.startswith("chromadb==") for line in requirements)
    assert any(line.startswith("bitsandbytes==") for line in requirements)
    assert not any(line.startswith("llmops==") for line in requirements)


def test_prepare_restores_the_index_so_the_bundle_retrieves(built: Path, tmp_path: Path) -> None:
    from llmops_cli.retrieval import Retriever

    query = "the retriever indexes documents into a local chromadb collection"
    expected = [(c.text, round(c.score, 5)) for c in Retriever(load_config(built), "kb").query(query, top_k=3)]
    root = unpack(_build(built).archive, tmp_path / "app")
    first = prepare_bundle(root)
    assert first.restored == ["kb"] and "small-4bit" in first.models
    again = prepare_bundle(root)
    assert again.restored == [] and again.present == ["kb"]
    got = [(c.text, round(c.score, 5)) for c in Retriever(load_config(root), "kb").query(query, top_k=3)]
    assert got == expected and got[0][1] > 0.2


def test_package_with_the_chains_own_adapter(built: Path, tmp_path: Path) -> None:
    result = _build(built, "bot-lora")
    root = unpack(result.archive, tmp_path / "app")
    config = load_config(root)
    assert config.models["base"].source == "model/base"
    assert (root / "model" / "base" / "model.safetensors").is_file()
    assert (root / "artifacts" / "adapter" / "lora" / "adapter_config.json").is_file()
    assert config.chains["rag"].prompt_steps()[0].adapter == "lora"
    placeholder = root / config.datasets["train"].path
    assert placeholder.read_bytes() == b"" and "not shipped" in str(config.datasets["train"].description)
    assert config.adapters["lora"].training.learning_rate == pytest.approx(2e-4)  # YAML 1.2 floats survive
    refs = {a["ref"] for a in read_manifest(result.archive)["artifacts"]}
    assert "adapter/lora@v1" in refs


def test_prompt_file_model_overridden_by_a_step_becomes_an_alias(built: Path, tmp_path: Path) -> None:
    root = unpack(_build(built, "quick-bot", register=False).archive, tmp_path / "app")
    config = load_config(root)
    assert config.models["base"].source == config.models["small-4bit"].source == "artifacts/quantized/small-4bit"
    assert not (root / "model").exists()  # the prompt file's base model is not shipped a second time
    assert not config.retrievers and "kb" not in (root / "llmops.yaml").read_text()


def test_model_only_package(built: Path, tmp_path: Path) -> None:
    root = unpack(_build(built, "just-model", register=False).archive, tmp_path / "app")
    config = load_config(root)
    assert set(config.models) == {"base"} and not config.chains and set(config.prompts) == {"answer"}
    assert not (root / "artifacts").exists()


def test_model_card_shows_the_latest_relevant_eval_results(built: Path, tmp_path: Path) -> None:
    from llmops_cli.evals.results import SuiteResult

    for suite, score in (("quality", 0.31), ("other", 0.99)):
        result = SuiteResult(
            suite=suite,
            target={"chain": "rag"} if suite == "quality" else {"prompt": "answer"},
            dataset_ref="dataset/eval@v1",
            config_hash="sha256:0",
            started="2026-01-02T03:04:05+00:00",
            aggregates={"rougeL": {"mean": score, "p95": 0.5}},
            thresholds=[{"key": "rougeL", "op": ">=", "limit": 0.2, "actual": score, "passed": True}],
        )
        (tmp_path / suite).mkdir()
        (tmp_path / suite / "results.json").write_text(json.dumps(result.to_dict()))
        register_folder(built, "eval", suite, tmp_path / suite)
    result = _build(built)
    card = (unpack(result.archive, tmp_path / "app") / "README.md").read_text()
    assert "### quality: passed (eval/quality@v1)" in card
    assert "| rougeL | 0.31 | 0.5 |" in card and "| rougeL >= 0.2 | 0.31 | pass |" in card
    assert "other" not in card.split("## Evaluation")[1].split("## Run it")[0]  # evaluates another model
    assert "eval/quality@v1" in {a["ref"] for a in read_manifest(result.archive)["artifacts"]}


def test_changed_inputs_give_a_new_version(built: Path) -> None:
    first = _build(built)
    prompt = built / "prompts" / "answer.yaml"
    prompt.write_text(prompt.read_text().replace("concise", "brief"))
    second = _build(built)
    assert second.version == "package/bot/v2" and second.sha256 != first.sha256
    manifest = read_manifest(second.archive)
    assert manifest["git_dirty"] is True and manifest["version"] == 2


# --- prerequisites ------------------------------------------------------------------------------------


def test_missing_prerequisites_name_the_command_to_run(proj: Path, tmp_path: Path) -> None:
    from llmops_cli.retrieval import build_index

    with pytest.raises(UsageError) as info:
        _build(proj)
    assert "llmops quantize small-4bit" in str(info.value.hint)
    register_folder(proj, "quantized", "small-4bit", fake_model_folder(tmp_path / "q4", quantized=True))
    with pytest.raises(UsageError) as info:
        _build(proj)
    assert "llmops index kb" in str(info.value.hint)
    with pytest.raises(UsageError) as info:
        _build(proj, "bot-lora")
    assert "llmops tune lora" in str(info.value.hint)
    build_index(load_config(proj), "kb")
    (proj / "docs" / "new.md").write_text("# New\n\nA document the index has not seen.\n")
    with pytest.raises(UsageError, match="out of date") as info:
        _build(proj)
    assert "llmops index kb" in str(info.value.hint)


def test_unknown_package_suggests_a_name(built: Path) -> None:
    with pytest.raises(UsageError, match="Unknown package 'bott'") as info:
        _build(built, "bott")
    assert "bot" in str(info.value.hint)


def test_edited_registered_file_is_refused(built: Path) -> None:
    weights = built / "artifacts" / "quantized" / "small-4bit" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(VersioningError, match="differs from the version that was registered"):
        _build(built)


# --- verify ---------------------------------------------------------------------------------------------


def _repack(
    src: Path, dst: Path, change: Callable[[str, bytes], bytes | None], extra: dict[str, bytes] | None = None
) -> Path:
    """A copy of ``src`` with member contents changed (None drops the member) and extra members."""
    with tarfile.open(src, "r:gz") as tar, tarfile.open(dst, "w:gz") as out:
        for info in tar.getmembers():
            data = tar.extractfile(info).read()  # type: ignore[union-attr]
            new = change(info.name, data)
            if new is None:
                continue
            info.size = len(new)
            out.addfile(info, io.BytesIO(new))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dst


def test_verify_passes_on_a_built_package(built: Path) -> None:
    result = _build(built)
    report = verify_package(result.archive)
    assert report.ok, report.as_dict()
    assert report.sha256 == result.sha256 and report.checked == len(read_manifest(result.archive)["files"])


def test_verify_catches_altered_missing_and_extra_files(built: Path, tmp_path: Path) -> None:
    archive = _build(built).archive

    def flip(name: str, data: bytes) -> bytes:
        if name == "prompts/answer.yaml":
            return data[:10] + bytes([data[10] ^ 0x01]) + data[11:]
        return data

    altered = verify_package(_repack(archive, tmp_path / "altered.tar.gz", flip))
    assert not altered.ok and [a["path"] for a in altered.altered] == ["prompts/answer.yaml"]
    missing = verify_package(
        _repack(archive, tmp_path / "missing.tar.gz", lambda n, d: None if n == "Dockerfile" else d)
    )
    assert missing.missing == ["Dockerfile"] and not missing.ok
    extra = verify_package(_repack(archive, tmp_path / "extra.tar.gz", lambda n, d: d, {"evil.py": b"print(1)"}))
    assert extra.extra == ["evil.py"] and not extra.ok


def test_verify_catches_a_flipped_byte_in_the_compressed_file(built: Path, tmp_path: Path) -> None:
    data = bytearray(_build(built).archive.read_bytes())
    data[len(data) // 2] ^= 0x40
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(data))
    report = verify_package(damaged)
    assert not report.ok and (report.error or report.altered)


def test_verify_reports_unsafe_members(built: Path, tmp_path: Path) -> None:
    archive = _build(built).archive
    evil = _repack(archive, tmp_path / "evil.tar.gz", lambda n, d: d, {"../escape.txt": b"x"})
    report = verify_package(evil)
    assert [u["path"] for u in report.unsafe] == ["../escape.txt"]


# --- unpack -----------------------------------------------------------------------------------------------


def _crafted(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("ok.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_member("../outside.txt"), "'..'"),
        (_member("sub/../../outside.txt"), "'..'"),
        (_member("/tmp/absolute.txt"), "absolute path"),
        (_member("link", tarfile.SYMTYPE, "../../etc"), "outside"),
        (_member("sub/link", tarfile.SYMTYPE, "../../x"), "outside"),
        (_member("abs-link", tarfile.SYMTYPE, "/etc/passwd"), "absolute"),
        (_member("hard", tarfile.LNKTYPE, "../outside.txt"), "outside"),
        (_member("dev", tarfile.CHRTYPE), "device"),
        (_member("ok.txt"), "twice"),
    ],
)
def test_unpack_refuses_crafted_archives(tmp_path: Path, member: tarfile.TarInfo, why: str) -> None:
    archive = _crafted(tmp_path / "evil.tar.gz", [member])
    dest = tmp_path / "area" / "dest"
    with pytest.raises(UnsafeArchiveError, match=why):
        unpack(archive, dest, verify=False)  # crafted archives have no manifest
    assert not dest.exists() and not (tmp_path / "area" / "outside.txt").exists()
    assert list((tmp_path / "area").iterdir()) == []  # the staging folder is gone too


def test_unpack_allows_links_inside_and_refuses_a_used_folder(tmp_path: Path) -> None:
    archive = _crafted(tmp_path / "a.tar.gz", [_member("sub/link", tarfile.SYMTYPE, "../ok.txt")])
    dest = unpack(archive, tmp_path / "dest", verify=False)
    assert (dest / "sub" / "link").read_text() == "ok"
    with pytest.raises(UsageError, match="not empty"):
        unpack(archive, dest, verify=False)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a gzip file")
    with pytest.raises(PackageIntegrityError):
        unpack(junk, tmp_path / "d2")
    assert not (tmp_path / "d2").exists()


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_build_verify_inspect(built: Path, cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("package", "bot", cwd=built)
    assert result.exit_code == 0, result.output
    assert "registered package/bot/v1" in result.output
    result = cli("package", "bot", "--json", cwd=built)
    data = json.loads(result.stdout)
    assert data["reused"] is True and data["version"] == "package/bot/v1"
    archive = Path(data["archive"])
    result = cli("package", "verify", str(archive), cwd=tmp_path)
    assert result.exit_code == 0 and "files match the manifest" in result.output
    result = cli("package", "inspect", str(archive), cwd=tmp_path)
    assert result.exit_code == 0 and "quantized/small-4bit@v1" in result.output
    assert json.loads(cli("package", "inspect", str(archive), "--json", cwd=tmp_path).stdout)["package"] == "bot"
    broken = _repack(archive, tmp_path / "b.tar.gz", lambda n, d: None if n == "serve.py" else d)
    result = cli("package", "verify", str(broken), cwd=tmp_path)
    assert result.exit_code == EXIT_VERSIONING and "serve.py" in result.output and "1 missing" in result.output
    result = cli("package", "unpack", str(broken), str(tmp_path / "x"), cwd=tmp_path)
    assert result.exit_code == EXIT_VERSIONING and not (tmp_path / "x").exists()
    result = cli("package", "unpack", str(archive), str(tmp_path / "app"), cwd=tmp_path)
    assert result.exit_code == 0 and (tmp_path / "app" / "llmops.yaml").is_file()


def test_cli_missing_prerequisite_exit_code(proj: Path, cli: Callable[..., Any]) -> None:
    result = cli("package", "bot", cwd=proj)
    assert result.exit_code == EXIT_USAGE and "llmops quantize small-4bit" in result.output


# --- pieces -----------------------------------------------------------------------------------------------


def test_llmops_wheel_is_reproducible_and_complete() -> None:
    import zipfile

    from llmops_cli.package.requirements import llmops_wheel

    name, data = llmops_wheel()
    assert llmops_wheel() == (name, data)
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        names = wheel.namelist()
        assert "llmops_cli/__init__.py" in names and "llmops_cli/_data/schemas/llmops.schema.json" in names
        assert names[-1].endswith("/RECORD") and not any("__pycache__" in n for n in names)
        assert (
            "llmops = llmops_cli.__main__:main"
            in wheel.read(f"{names[-1].rsplit('/', 1)[0]}/entry_points.txt").decode()
        )


def test_importing_the_package_module_stays_light() -> None:
    code = (
        "import sys, llmops_cli.package, llmops_cli.cli.package; "
        "print([m for m in ('torch', 'transformers', 'chromadb', 'numpy', 'git') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "[]"


def test_write_archive_is_readable_by_standard_tools_and_refuses_duplicates(tmp_path: Path) -> None:
    from llmops_cli.package.archive import Entry, write_archive

    entries = [Entry("b.txt", data=b"2"), Entry("manifest.json", data=b"{}"), Entry("a/x.txt", data=b"1")]
    write_archive(entries, tmp_path / "t.tar.gz", mtime=12345)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress((tmp_path / "t.tar.gz").read_bytes()))) as tar:
        assert tar.getnames() == ["manifest.json", "a/x.txt", "b.txt"]
        assert tar.extractfile("a/x.txt").read() == b"1"  # type: ignore[union-attr]
    listing = subprocess.run(["tar", "-tzf", str(tmp_path / "t.tar.gz")], capture_output=True, text=True, check=True)
    assert listing.stdout.split() == ["manifest.json", "a/x.txt", "b.txt"]
    with pytest.raises(UsageError):
        write_archive([Entry("a", data=b"1"), Entry("a", data=b"2")], tmp_path / "dup.tar.gz", mtime=0)
    assert not (tmp_path / "dup.tar.gz").exists()
