"""Index build and query speed on sample-project/docs, incremental against full rebuilds.

Copies sample-project/ into a temporary git project, then measures with the embedded
all-MiniLM-L6-v2:

- cold build: importing torch/transformers and loading the model, plus the first build_index;
- full rebuild with the model loaded (the obvious alternative to incremental indexing);
- re-running the index on the unchanged corpus (goal: at most 5% of the cold build time);
- re-running it after editing one document;
- embedding throughput, batched and length-sorted (ours) against one text at a time;
- query latency p50/p95 over the eval questions, and how often the expected document is in the top 3.

    python benchmarks/index_build.py [--queries 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}  # fmt: skip


def make_project(tmp: Path) -> Path:
    project = tmp / "project"
    shutil.copytree(ROOT / "sample-project", project, ignore=shutil.ignore_patterns(".llmops", "artifacts"))
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "sample project"]):
        subprocess.run(["git", *args], cwd=project, env=env, check=True)
    return project


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def fresh_process_rerun(project: Path) -> float:
    """An unchanged re-run in a new interpreter, as `llmops index` would do it (imports included)."""
    code = (
        "import time; t = time.perf_counter(); from pathlib import Path;"
        "from llmops_cli.validation import load_config; from llmops_cli.retrieval import build_index;"
        f"s = build_index(load_config(Path({str(project)!r})), 'kb'); assert s.chunks_embedded == 0;"
        "import sys; assert 'torch' not in sys.modules, 'torch was imported';"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each fast measurement (median)")
    parser.add_argument("--single", type=int, default=40, help="chunks embedded one at a time (extrapolated)")
    args = parser.parse_args()
    os.environ.update(GIT_ENV)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
        project = make_project(Path(tmp))
        from llmops_cli.retrieval import build_index, get_embedder, get_retriever
        from llmops_cli.validation import load_config

        config = load_config(project)
        embedder = get_embedder(config, "all-minilm-l6-v2")
        load_s, _ = timed(embedder.load)  # imports torch + transformers, loads MiniLM
        build_s, cold = timed(build_index, config, "kb")
        cold_s = load_s + build_s
        rerun = [timed(build_index, config, "kb")[0] for _ in range(args.repeats)]
        fresh = [fresh_process_rerun(project) for _ in range(max(1, args.repeats // 2))]
        full_s, full = timed(build_index, config, "kb", full=True)

        doc = project / "docs" / "wifi-setup.md"
        doc.write_text(doc.read_text() + "\nOne more troubleshooting tip: restart the router first.\n")
        edit_s, edited = timed(build_index, config, "kb")

        from llmops_cli.retrieval import chunk_document, load_documents, retriever_spec

        spec = retriever_spec(config, "kb")
        docs = load_documents(project / "docs", root=project, file_format="md")
        texts = [c.embedding_text() for d in docs for c in chunk_document(d, spec.chunk)]
        batched_s, _ = timed(embedder.embed, texts)
        sample = texts[:: max(1, len(texts) // args.single)][: args.single]
        one_s = sum(timed(embedder.embed, [t])[0] for t in sample) * len(texts) / len(sample)

        rows = [json.loads(line) for line in (project / "data" / "eval.jsonl").read_text().splitlines() if line]
        rows = (rows * (args.queries // max(1, len(rows)) + 1))[: args.queries]
        retriever = get_retriever(config, "kb")
        first_s, _ = timed(retriever.query, rows[0]["question"])
        latencies, hits = [], 0
        for row in rows:
            seconds, found = timed(retriever.query, row["question"])
            latencies.append(seconds * 1000)
            hits += any(h.source == row.get("source") for h in found)

    n = cold.chunks_embedded
    rerun_s, fresh_s = statistics.median(rerun), statistics.median(fresh)
    print(f"corpus: {cold.documents} documents, {n} chunks (size {spec.chunk.size}, overlap {spec.chunk.overlap})")
    print(f"{'measurement':58} {'seconds':>9} {'chunks/s':>9}")
    table = [
        ("cold build: import torch + load MiniLM", load_s, None),
        ("cold build: first build_index (embed + store + version)", build_s, n / build_s),
        ("cold build total", cold_s, n / cold_s),
        ("full rebuild, model loaded (--full; the alternative)", full_s, full.chunks_embedded / full_s),
        (f"re-run, unchanged corpus (median of {len(rerun)})", rerun_s, None),
        (f"re-run, unchanged, fresh process incl. imports ({len(fresh)})", fresh_s, None),
        (f"re-run after editing one document ({edited.chunks_embedded} chunks)", edit_s, None),
        (f"embed {len(texts)} chunks, batched by 32, length-sorted", batched_s, len(texts) / batched_s),
        (f"embed {len(texts)} chunks, one at a time (from {len(sample)})", one_s, len(texts) / one_s),
    ]
    for name, seconds, rate in table:
        print(f"{name:58} {seconds:9.3f} {'' if rate is None else f'{rate:9.1f}'}")
    print(f"\nquery latency over {len(latencies)} queries, model and collection open "
          f"(first query {first_s * 1000:.1f} ms):")  # fmt: skip
    print(f"  p50 {percentile(latencies, 0.5):.1f} ms   p95 {percentile(latencies, 0.95):.1f} ms   "
          f"expected document in top {spec.top_k}: {hits}/{len(rows)}")  # fmt: skip
    ratio = rerun_s / cold_s
    verdict = "ok" if ratio <= 0.05 else "OVER BUDGET"
    print(f"\nunchanged re-run / cold build: {ratio:.2%} (goal <= 5%): {verdict}")
    print(f"unchanged re-run, fresh process / cold build: {fresh_s / cold_s:.2%}")
    print(f"full rebuild / unchanged re-run: {full_s / rerun_s:.0f}x")
    print(f"batched / one-at-a-time embedding throughput: {one_s / batched_s:.1f}x")


if __name__ == "__main__":
    main()
