"""Retrieval: documents, chunking, the incremental index, versions, queries and the CLI.

Most tests inject a small deterministic embedder (hashed bag of words) through ``embedder=``;
the integration tests at the end use the real embedded all-MiniLM-L6-v2 on a handful of documents.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.config.project import ProjectConfig
from llmops_cli.errors import EXIT_USAGE, ConfigError, UsageError
from llmops_cli.retrieval import (
    ChunkSettings,
    Retriever,
    build_index,
    chunk_document,
    content_hash,
    get_retriever,
    load_documents,
    retriever_spec,
    split_text,
)
from llmops_cli.retrieval.chunking import markdown_headings
from llmops_cli.retrieval.documents import Document
from llmops_cli.retrieval.store import get_collection, open_client
from llmops_cli.validation import load_config
from llmops_cli.versioning import ArtifactRef, ArtifactRegistry
from tests.fixtures.packages import HashEmbedder
from tests.helpers import SAMPLE_PROJECT, git

# --- helpers ------------------------------------------------------------------------------------

DOCS = {
    "wifi.md": (
        "# Wi-Fi setup\n\nThe thermostat joins 2.4 GHz networks only. Keep the phone close during setup.\n\n"
        "## Changing networks\n\nOpen Settings, then Network, then Reconnect. Your schedule is kept.\n"
    ),
    "battery.md": (
        "# Batteries\n\nThe room sensor runs on one CR2032 battery for about two years.\n\n"
        "## Low battery\n\nThe app warns when the battery drops below ten percent.\n"
    ),
    "billing/refunds.txt": "Refunds are paid to the original card within ten business days of the return.",
    "billing/plans.md": "# Plans\n\nHearth Plus costs five dollars a month and adds video history.\n",
}


def write_docs(root: Path, docs: dict[str, str]) -> None:
    folder = root / "docs"
    for old in folder.rglob("*"):
        if old.is_file():
            old.unlink()
    for rel, text in docs.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def set_retriever(root: Path, text: str) -> None:
    path = root / "llmops.yaml"
    path.write_text(re.sub(r"(?m)^  kb: \{.*\}$", "  kb: " + text, path.read_text()))


@pytest.fixture
def kb(project: Path) -> Path:
    """The init project with our small docs folder and a retriever with small chunks."""
    write_docs(project, DOCS)
    set_retriever(project, "{dataset: docs, chunk: {size: 120, overlap: 20}, top_k: 2}")
    return project


def cfg(root: Path) -> ProjectConfig:
    return load_config(root)


def tags(root: Path) -> list[str]:
    return git(root, "tag", "--list", "index/*").split()


def test_imports_stay_light() -> None:
    """The core imports no typer/rich; neither layer loads torch, transformers or chromadb at import."""
    code = (
        "import sys, llmops_cli.retrieval; core = {m.split('.')[0] for m in sys.modules};"
        "import llmops_cli.cli.index, llmops_cli.cli.retrieve; every = {m.split('.')[0] for m in sys.modules};"
        "print(sorted(core & {'typer', 'rich'}), sorted(every & {'torch', 'transformers', 'chromadb', 'numpy'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[] []", done.stdout + done.stderr


# --- chunking -----------------------------------------------------------------------------------


def _texts() -> list[tuple[str, bool]]:
    rng = random.Random(7)
    words = ["thermostat", "wifi", "a", "reset", "the", "schedule", "battery", "sensor", "x" * 30]
    prose = " ".join(rng.choice(words) + ("." if rng.random() < 0.1 else "") for _ in range(600))
    paragraphs = "\n\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 60))) for _ in range(30))
    samples = [(p.read_text(), True) for p in sorted((SAMPLE_PROJECT / "docs").glob("*.md"))[:4]]
    return [(prose, False), (paragraphs, False), ("y" * 1234, False), ("  short text  ", False), *samples]


@pytest.mark.parametrize("size,overlap", [(500, 50), (120, 20), (50, 0), (200, 199), (1, 0)])
def test_chunks_are_bounded_exact_ordered_and_cover_the_text(size: int, overlap: int) -> None:
    settings = ChunkSettings(size, overlap)
    for text, markdown in _texts():
        spans = split_text(text, settings, markdown=markdown)
        assert spans, text[:40]
        covered = set()
        for span in spans:
            assert 0 < span.end - span.start <= size
            chunk = text[span.start : span.end]
            assert chunk == chunk.strip()  # no chunk starts or ends with whitespace
            covered.update(range(span.start, span.end))
        for prev, nxt in zip(spans, spans[1:], strict=False):
            assert prev.start < nxt.start  # progress
            assert nxt.start <= prev.end or text[prev.end : nxt.start].isspace()  # no gap with content
            assert prev.end - nxt.start <= overlap  # never more overlap than asked for
        missing = [i for i, ch in enumerate(text) if not ch.isspace() and i not in covered]
        assert missing == []


def test_neighbouring_chunks_overlap_on_word_boundaries() -> None:
    text = " ".join(f"word{i}" for i in range(400))
    spans = split_text(text, ChunkSettings(100, 30), markdown=False)
    assert len(spans) > 5
    for prev, nxt in zip(spans, spans[1:], strict=False):
        shared = text[nxt.start : prev.end]
        assert 0 < len(shared) <= 30
        assert text[nxt.start - 1] == " "  # starts at a word, not inside one


def test_chunks_prefer_paragraphs_then_sentences() -> None:
    para = "First sentence here. Second sentence is a bit longer than the first one."
    text = "\n\n".join([para] * 6)
    for span in split_text(text, ChunkSettings(160, 0)):
        assert text[span.start : span.end].endswith("one.")  # whole paragraphs
    long_para = " ".join(["This is one sentence of the paragraph."] * 20)
    for span in split_text(long_para, ChunkSettings(100, 0))[:-1]:
        assert long_para[span.start : span.end].endswith(".")


def test_markdown_chunks_break_at_headings_and_remember_them() -> None:
    text = (
        "# Guide\n\nIntro text for the guide.\n\n## Install\n\n" + "Install step. " * 8 + "\n\n"
        "```\n# not a heading\n```\n\n## Use\n\n" + "Use it daily. " * 20
    )
    assert [h.text for h in markdown_headings(text)] == ["Guide", "Install", "Use"]
    doc = Document("g.md", "g.md", text, "x", "md", "Guide")
    chunks = chunk_document(doc, ChunkSettings(200, 40))
    assert [c.heading for c in chunks] == ["Guide", "Use", "Use"]
    assert chunks[0].text.endswith("```") and chunks[1].text.startswith("## Use")  # a section starts clean
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert [c.id for c in chunks] == [f"g.md::{i}" for i in range(len(chunks))]
    # The heading gives a chunk cut from the middle of a section its topic when embedded.
    assert chunks[2].embedding_text().startswith("Guide > Use\n\nit daily.")
    assert chunks[1].embedding_text().startswith("Guide\n\n## Use")


def test_no_chunk_ends_with_a_heading() -> None:
    text = "# A\n\n" + "Body text here. " * 20 + "\n\n## B\n\n### B.1\n\n" + "More text. " * 40
    docs = [Document("t.md", "t.md", text, "x", "md")]
    docs += [Document(p.name, p.name, p.read_text(), "x", "md") for p in sorted((SAMPLE_PROJECT / "docs").glob("*.md"))]
    for doc in docs:
        for chunk in chunk_document(doc, ChunkSettings(500, 50)):
            assert not re.match(r"#{1,6} ", chunk.text.split("\n")[-1]), (doc.id, chunk.index, chunk.text[-80:])


def test_chunking_is_deterministic() -> None:
    for text, markdown in _texts():
        assert split_text(text, ChunkSettings(300, 40), markdown=markdown) == split_text(
            text, ChunkSettings(300, 40), markdown=markdown
        )


def test_chunk_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        ChunkSettings(100, 100)
    assert ChunkSettings(500, 50).fingerprint != ChunkSettings(500, 60).fingerprint


# --- documents ----------------------------------------------------------------------------------


def test_load_documents_folder_recursive_sorted_with_stable_ids(tmp_path: Path) -> None:
    write_docs(tmp_path, {**DOCS, ".hidden/x.md": "secret", "notes.pdf": "binary"})
    (tmp_path / "docs" / "faq.jsonl").write_text(
        json.dumps({"id": "q1", "text": "How to reset?", "title": "Reset", "metadata": {"lang": "en", "n": [1]}})
        + "\n\n"
        + json.dumps({"content": "Second row"})
        + "\n"
        + json.dumps({"text": "   "})
        + "\n"
    )
    docs = load_documents(tmp_path / "docs", root=tmp_path)
    assert [d.id for d in docs] == [
        "docs/battery.md",
        "docs/billing/plans.md",
        "docs/billing/refunds.txt",
        "docs/faq.jsonl#q1",
        "docs/faq.jsonl#3",  # no id: its line number
        "docs/wifi.md",
    ]
    by_id = {d.id: d for d in docs}
    assert by_id["docs/wifi.md"].title == "Wi-Fi setup"
    assert by_id["docs/faq.jsonl#q1"].metadata == {"lang": "en", "n": "[1]"}
    assert by_id["docs/faq.jsonl#q1"].source == "docs/faq.jsonl"
    assert by_id["docs/wifi.md"].sha256 == hashlib.sha256(DOCS["wifi.md"].encode()).hexdigest()
    again = load_documents(tmp_path / "docs", root=tmp_path)
    assert content_hash(again) == content_hash(docs)
    (tmp_path / "docs" / "wifi.md").write_text("changed")
    assert content_hash(load_documents(tmp_path / "docs", root=tmp_path)) != content_hash(docs)
    only_md = load_documents(tmp_path / "docs", root=tmp_path, file_format="md")
    assert {d.kind for d in only_md} == {"md"}


def test_load_documents_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "rows.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(UsageError, match="row 2: no 'text'"):
        load_documents(bad, root=tmp_path)
    assert [d.text for d in load_documents(bad, root=tmp_path, fields={"body": "text"})] == ["ok", "no text"]
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n')
    with pytest.raises(UsageError, match="Two documents have the id"):
        load_documents(dup, root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="No documents found"):
        load_documents(tmp_path / "empty", root=tmp_path)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UsageError, match="not UTF-8"):
        load_documents(latin, root=tmp_path)


# --- the incremental index (fake embedder) -----------------------------------------------------


@pytest.mark.filterwarnings("ignore:legacy embedding function config")  # reading .configuration, no function set
def test_first_build_indexes_everything_and_registers_v1(kb: Path) -> None:
    embedder = HashEmbedder()
    events: list[tuple[str, int, int]] = []
    stats = build_index(cfg(kb), "kb", embedder=embedder, progress=lambda *e: events.append(e))
    docs = load_documents(kb / "docs", root=kb)
    expected = sum(len(chunk_document(d, ChunkSettings(120, 20))) for d in docs)
    assert (stats.documents, stats.added, stats.updated, stats.removed) == (4, 4, 0, 0)
    assert stats.chunks_embedded == stats.chunks_total == expected
    assert stats.rebuilt == "first build" and stats.version == "index/kb/v1"
    assert events[-1] == ("documents", 4, 4) and ("chunks", expected, expected) in events
    assert tags(kb) == ["index/kb/v1"]
    collection = get_collection(open_client(retriever_spec(cfg(kb), "kb"), kb), "kb-index")
    assert collection is not None and collection.count() == expected
    assert collection.configuration["hnsw"]["space"] == "cosine"
    meta = collection.get(ids=["docs/wifi.md::0"], include=["metadatas"])["metadatas"][0]
    assert meta["source"] == "docs/wifi.md" and meta["heading"] == "Wi-Fi setup" and meta["start"] == 0
    # The version records what the index holds, not the vectors (those stay in .llmops/).
    registry = ArtifactRegistry.for_config(cfg(kb))
    version = registry.get(ArtifactRef("index", "kb"))
    index_json = json.loads((kb / "artifacts/index/kb/index.json").read_text())
    assert index_json["chunks"] == expected and index_json["collection"] == "kb-index"
    assert {d["id"]: d["sha256"] for d in index_json["documents"]} == {d.id: d.sha256 for d in docs}
    assert {i["ref"]: i["hash"] for i in version.manifest["inputs"]} == {
        "docs/": content_hash(docs),
        "all-minilm-l6-v2": embedder.fingerprint,
    }
    assert "chroma" not in git(kb, "ls-files") and git(kb, "status", "--porcelain", "--", ".llmops") == ""


def test_rerun_embeds_nothing_and_registers_no_version(kb: Path) -> None:
    build_index(cfg(kb), "kb", embedder=HashEmbedder())
    embedder = HashEmbedder()
    stats = build_index(cfg(kb), "kb", embedder=embedder)
    assert (stats.unchanged, stats.added, stats.updated, stats.removed, stats.chunks_embedded) == (4, 0, 0, 0, 0)
    assert not stats.changed and stats.version is None and stats.current_version == "index/kb/v1"
    assert embedder.calls == []
    assert tags(kb) == ["index/kb/v1"]


def test_editing_one_document_reembeds_only_its_chunks(kb: Path) -> None:
    build_index(cfg(kb), "kb", embedder=HashEmbedder())
    (kb / "docs/battery.md").write_text("# Batteries\n\nThe sensor now uses two AAA batteries.\n")
    embedder = HashEmbedder()
    stats = build_index(cfg(kb), "kb", embedder=embedder)
    assert (stats.updated, stats.unchanged, stats.added, stats.removed) == (1, 3, 0, 0)
    assert stats.chunks_embedded == 1 and embedder.embedded == ["# Batteries\n\nThe sensor now uses two AAA batteries."]
    assert stats.version == "index/kb/v2"
    hits = Retriever(cfg(kb), "kb", embedder=HashEmbedder()).query("two AAA batteries", top_k=1)
    assert hits[0].doc_id == "docs/battery.md" and "AAA" in hits[0].text
    collection = get_collection(open_client(retriever_spec(cfg(kb), "kb"), kb), "kb-index")
    old = collection.get(where={"doc_id": "docs/battery.md"})["ids"]
    assert old == ["docs/battery.md::0"]  # the old version's extra chunks are gone


def test_deleting_a_document_removes_its_chunks(kb: Path) -> None:
    build_index(cfg(kb), "kb", embedder=HashEmbedder())
    (kb / "docs/billing/refunds.txt").unlink()
    stats = build_index(cfg(kb), "kb", embedder=HashEmbedder())
    assert (stats.removed, stats.unchanged, stats.chunks_embedded) == (1, 3, 0)
    assert stats.chunks_removed >= 1 and stats.version == "index/kb/v2"
    collection = get_collection(open_client(retriever_spec(cfg(kb), "kb"), kb), "kb-index")
    assert collection.get(where={"doc_id": "docs/billing/refunds.txt"})["ids"] == []
    assert collection.count() == stats.chunks_total


def test_changing_chunk_settings_or_model_rebuilds(kb: Path) -> None:
    first = build_index(cfg(kb), "kb", embedder=HashEmbedder())
    set_retriever(kb, "{dataset: docs, chunk: {size: 60, overlap: 10}, top_k: 2}")
    embedder = HashEmbedder()
    stats = build_index(cfg(kb), "kb", embedder=embedder)
    assert stats.rebuilt == "embedding model or chunk settings changed"
    assert stats.added == 4 and stats.chunks_embedded == stats.chunks_total > first.chunks_total
    assert stats.version == "index/kb/v2"
    other_model = build_index(cfg(kb), "kb", embedder=HashEmbedder(tag="other"))
    assert other_model.rebuilt and other_model.chunks_embedded == stats.chunks_total
    full = build_index(cfg(kb), "kb", embedder=HashEmbedder(tag="other"), full=True)
    assert full.rebuilt == "--full" and full.chunks_embedded == stats.chunks_total
    assert full.version is None  # same content as v3: nothing new to version
    assert tags(kb) == ["index/kb/v1", "index/kb/v2", "index/kb/v3"]


def test_interrupted_write_is_repaired(kb: Path) -> None:
    build_index(cfg(kb), "kb", embedder=HashEmbedder())
    collection = get_collection(open_client(retriever_spec(cfg(kb), "kb"), kb), "kb-index")
    collection.delete(ids=["docs/wifi.md::1"])  # as if a run died between two writes ...
    (kb / ".llmops" / "index-kb-index.stamp.json").unlink()  # ... which clears the up-to-date stamp first
    stats = build_index(cfg(kb), "kb", embedder=HashEmbedder())
    assert stats.updated == 1 and stats.unchanged == 3
    assert sorted(collection.get(where={"doc_id": "docs/wifi.md"})["ids"])[:2] == ["docs/wifi.md::0", "docs/wifi.md::1"]


def test_jsonl_text_dataset_and_http_store_settings(project: Path) -> None:
    (project / "data" / "kb.jsonl").write_text(
        "\n".join(json.dumps({"id": f"r{i}", "text": f"row {i} about topic{i}"}) for i in range(5)) + "\n"
    )
    text = (project / "llmops.yaml").read_text()
    text = text.replace("  docs: {path: docs/, format: documents}", "  docs: {path: docs/, format: documents}\n"
                        "  rows: {path: data/kb.jsonl, format: text}")  # fmt: skip
    (project / "llmops.yaml").write_text(text)
    set_retriever(project, "{dataset: rows, store: {collection: my-rows}}")
    stats = build_index(cfg(project), "kb", embedder=HashEmbedder())
    assert stats.collection == "my-rows" and stats.chunks_total == 5
    hits = Retriever(cfg(project), "kb", embedder=HashEmbedder()).query("topic3")
    assert hits[0].doc_id == "data/kb.jsonl#r3" and len(hits) == 3  # the default top_k
    set_retriever(project, "{dataset: rows, store: {type: http}}")
    with pytest.raises(ConfigError, match="host"):
        retriever_spec(cfg(project), "kb")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Any:
    """A Chroma server on a free local port (the `chroma` command chromadb installs)."""
    import shutil
    import time
    import urllib.request

    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if exe is None:
        pytest.skip("the 'chroma' server command is not installed")
    port = _free_port()
    log = (tmp_path / "chroma.log").open("w")
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path / "srv"), "--port", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://localhost:{port}/api/v2/heartbeat", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("chroma server did not start: " + (tmp_path / "chroma.log").read_text()[-2000:])
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_http_store(kb: Path, chroma_server: int) -> None:
    set_retriever(kb, f"{{dataset: docs, store: {{type: http, host: localhost, port: {chroma_server}}}}}")
    stats = build_index(cfg(kb), "kb", embedder=HashEmbedder())
    assert stats.store == f"http://localhost:{chroma_server}" and stats.chunks_embedded == stats.chunks_total
    assert build_index(cfg(kb), "kb", embedder=HashEmbedder()).chunks_embedded == 0
    hits = Retriever(cfg(kb), "kb", embedder=HashEmbedder()).query("refunds card")
    assert hits[0].source == "docs/billing/refunds.txt"
    assert not (kb / ".llmops" / "chroma").exists()
    assert git(kb, "status", "--porcelain", "--", ".llmops") == ""  # lock files stay ignored


def test_unreachable_http_store_is_reported(kb: Path) -> None:
    from llmops_cli.errors import EXIT_UNAVAILABLE, UnavailableError

    set_retriever(kb, f"{{dataset: docs, store: {{type: http, host: 127.0.0.1, port: {_free_port()}}}}}")
    with pytest.raises(UnavailableError, match="Cannot reach the Chroma server") as info:
        build_index(cfg(kb), "kb", embedder=HashEmbedder())
    assert info.value.exit_code == EXIT_UNAVAILABLE and "chroma run" in (info.value.hint or "")


def test_nothing_reaches_the_network(kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access to {address}")
        return real_connect(self, address)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    build_index(cfg(kb), "kb", embedder=HashEmbedder())
    assert Retriever(cfg(kb), "kb", embedder=HashEmbedder()).query("refunds card")


# --- queries ------------------------------------------------------------------------------------


def test_retrieve_before_index_says_how_to_build_it(kb: Path) -> None:
    with pytest.raises(UsageError) as info:
        Retriever(cfg(kb), "kb", embedder=HashEmbedder())
    assert info.value.hint == "Run 'llmops index kb'."
    with pytest.raises(UsageError, match="Unknown retriever 'kbb'") as unknown:
        Retriever(cfg(kb), "kbb", embedder=HashEmbedder())
    assert unknown.value.hint == "Did you mean 'kb'?"


def test_retriever_returns_ranked_chunks(kb: Path) -> None:
    build_index(cfg(kb), "kb", embedder=HashEmbedder())
    retriever = Retriever(cfg(kb), "kb", embedder=HashEmbedder())
    hits = retriever.query("refunds original card business days")
    assert len(hits) == 2  # the retriever's top_k
    assert hits[0].source == "docs/billing/refunds.txt" and hits[0].heading is None
    assert hits[0].score >= hits[1].score and 0.0 < hits[0].score <= 1.0001
    hits = retriever.query("reconnect network schedule", top_k=1)
    assert (hits[0].doc_id, hits[0].heading) == ("docs/wifi.md", "Changing networks")
    assert hits[0].location == "docs/wifi.md › Changing networks"
    many = retriever.query_many(["battery CR2032", "Hearth Plus video history"], top_k=1)
    assert [h[0].source for h in many] == ["docs/battery.md", "docs/billing/plans.md"]
    with pytest.raises(UsageError, match="empty"):
        retriever.query("  ")
    # A retriever built for another embedding model refuses to mix vectors.
    with pytest.raises(UsageError, match="different embedding model"):
        Retriever(cfg(kb), "kb", embedder=HashEmbedder(tag="other"))


def test_get_retriever_is_cached_and_refreshed_after_indexing(kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmops_cli.retrieval.index as index_mod
    import llmops_cli.retrieval.retriever as retriever_mod

    fake = HashEmbedder()
    monkeypatch.setattr(retriever_mod, "get_embedder", lambda config, value: fake)
    monkeypatch.setattr(index_mod, "get_embedder", lambda config, value: fake)
    build_index(cfg(kb), "kb")
    first = get_retriever(cfg(kb), "kb")
    assert get_retriever(cfg(kb), "kb") is first
    build_index(cfg(kb), "kb", full=True)  # drops and recreates the collection
    second = get_retriever(cfg(kb), "kb")
    assert second is not first and second.query("battery")[0].source == "docs/battery.md"


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def fake_model(embedder: HashEmbedder) -> HashEmbedder:
    """The hash embedder in place of the real one (tests/fixtures/packages.py)."""
    return embedder


def test_cli_index_and_retrieve(kb: Path, cli: Callable[..., Any], fake_model: HashEmbedder) -> None:
    result = cli("retrieve", "kb", "refunds", cwd=kb)
    assert result.exit_code == EXIT_USAGE and "Run 'llmops index kb'" in result.output
    result = cli("index", cwd=kb)
    assert result.exit_code == 0, result.output
    assert "registered index/kb/v1 (rebuilt: first build)" in result.output
    assert re.search(r"kb\s+│\s+4\s+│\s+4\s+│", result.output)
    result = cli("index", "kb", "--json", cwd=kb)
    assert result.exit_code == 0, result.output
    (data,) = json.loads(result.stdout)
    assert data["unchanged"] == 4 and data["chunks_embedded"] == 0 and data["current_version"] == "index/kb/v1"
    result = cli("index", "kb", cwd=kb)
    assert "kb: up to date (index/kb/v1)" in result.output
    result = cli("retrieve", "kb", "refunds [original] card", "--top-k", "1", cwd=kb)
    assert result.exit_code == 0, result.output
    assert "docs/billing/refunds.txt" in result.stdout and "Refunds are paid" in result.stdout
    result = cli("retrieve", "kb", "reconnect network", "--json", cwd=kb)
    hits = json.loads(result.stdout)
    assert [h["rank"] for h in hits] == [1, 2] and hits[0]["heading"] == "Changing networks"
    result = cli("index", "nope", cwd=kb)
    assert result.exit_code == EXIT_USAGE and "Unknown retriever 'nope'" in result.output


# --- the real embedded model (integration) ------------------------------------------------------


@pytest.mark.integration
def test_minilm_retrieves_the_relevant_document_first(kb: Path) -> None:
    from llmops_cli.retrieval import get_embedder

    config = cfg(kb)
    stats = build_index(config, "kb")
    assert stats.chunks_embedded == stats.chunks_total > 0
    assert stats.embedding_fingerprint == get_embedder(config, "all-minilm-l6-v2").fingerprint
    retriever = get_retriever(config, "kb")
    cases = {
        "How long does the sensor battery last?": "docs/battery.md",
        "When will I get my money back?": "docs/billing/refunds.txt",
        "My router changed, how do I reconnect the thermostat?": "docs/wifi.md",
        "How much is the subscription per month?": "docs/billing/plans.md",
    }
    for question, source in cases.items():
        hits = retriever.query(question)
        assert hits[0].source == source, (question, [(h.source, h.score) for h in hits])
        assert 0.2 < hits[0].score <= 1.0001
    vectors = retriever.embedder.embed(["one", "a much longer sentence about thermostats and Wi-Fi"])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-5
    # An unchanged re-run in a fresh process (what `llmops index` does) never even imports torch.
    code = (
        "import sys; from pathlib import Path; from llmops_cli.validation import load_config;"
        "from llmops_cli.retrieval import build_index;"
        f"s = build_index(load_config(Path({str(kb)!r})), 'kb');"
        "print(s.chunks_embedded, s.version, sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split("\n")[0] == "0 None []", done.stdout + done.stderr


@pytest.mark.integration
def test_minilm_pooling_ignores_padding() -> None:
    """A text embeds the same alone and next to a longer one (the mask keeps padding out)."""
    from llmops_cli.models.embedded import EMBEDDED_MODELS, require_embedded
    from llmops_cli.retrieval.embeddings import EmbeddingModel, HFEmbedder

    folder = require_embedded(EMBEDDED_MODELS["all-minilm-l6-v2"])
    embedder = HFEmbedder(EmbeddingModel("all-minilm-l6-v2", folder, "sha256:test"), batch_size=4)
    texts = ["short one", "a considerably longer text " * 8, "mid length text here", "x"]
    seen: list[int] = []
    together = embedder.embed(texts, on_batch=seen.append)
    alone = [embedder.embed([t])[0] for t in texts]
    assert seen == [4]
    for a, b in zip(together, alone, strict=True):
        assert float(abs(a - b).max()) < 1e-4


def test_hf_embedder_on_a_tiny_random_bert(tmp_path: Path) -> None:
    """Mean pooling, normalization, order and batching, on a 1-layer random BERT built here."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    from llmops_cli.retrieval.embeddings import EmbeddingModel, HFEmbedder

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [*specials, "the", "a", "thermostat", "wifi", "reset", "error", "code", "battery", "sensor"]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(tmp_path)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(tmp_path)
    embedder = HFEmbedder(EmbeddingModel("tiny", tmp_path, "sha256:tiny"), batch_size=2, device="cpu")
    assert embedder.max_length == 64
    texts = ["the thermostat", "wifi reset error code battery sensor the a", "battery", "the wifi"]
    calls: list[int] = []
    together = embedder.embed(texts, on_batch=calls.append)
    assert together.shape == (4, 16) and calls == [2, 2]
    assert torch.allclose(torch.from_numpy(together).norm(dim=1), torch.ones(4), atol=1e-5)
    for i, text in enumerate(texts):
        assert float(abs(embedder.embed([text])[0] - together[i]).max()) < 1e-5
    other = HFEmbedder(EmbeddingModel("tiny", tmp_path, "sha256:tiny"), max_length=8)
    assert other.fingerprint != embedder.fingerprint  # truncation changes the vectors


def test_failed_run_leaves_no_up_to_date_stamp(kb: Path) -> None:
    build_index(cfg(kb), "kb", embedder=HashEmbedder())
    stamp = kb / ".llmops" / "index-kb-index.stamp.json"
    assert stamp.is_file()
    assert build_index(cfg(kb), "kb", embedder=HashEmbedder()).changed is False  # the fast path
    (kb / "docs" / "wifi.md").write_text("# Wi-Fi\n\nEverything changed about the router.\n")

    class Broken(HashEmbedder):
        def embed(self, texts, *, on_batch=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("killed mid-run")

    with pytest.raises(RuntimeError):
        build_index(cfg(kb), "kb", embedder=Broken())
    assert not stamp.exists()
    assert build_index(cfg(kb), "kb", embedder=HashEmbedder()).updated == 1
