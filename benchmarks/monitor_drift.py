"""Monitor store ingest rate and `llmops monitor` report time on 100k synthetic requests.

Copies sample-project/ (its monitor: section compares traffic with support-eval: length, oov and
embedding drift) into a temporary git project, then measures:

- ingest: MonitorStore.log_many (batched transactions, ours) against log_request (the server's
  hot path: a queue and one background writer thread) and against the obvious alternative, one
  INSERT and COMMIT per record on a plain sqlite3 connection (run on --naive-records, extrapolated);
- report time on the 100k records: ours (a seeded sample of --max-samples texts per side) against
  every record, no subsampling. Length and OOV drift run for real on all 100k inputs and outputs;
  embedding all 200k texts with MiniLM on a CPU takes hours, so that part of the alternative is
  extrapolated from the embedding rate measured on --embed-probe texts (marked "extrapolated";
  --full-embedding runs it for real, e.g. on a GPU machine).

    python benchmarks/monitor_drift.py [--records 100000] [--max-samples 1000] [--no-embedding]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}  # fmt: skip
ENDPOINTS = ["/v1/chat/completions"] * 8 + ["/v1/chains/{name}/invoke", "/v1/completions"]
DRIFTED = [
    "Conformément à l'article {n} du Code civil, le bail commercial est résilié de plein droit.",
    "Please summarise the attached quarterly revenue spreadsheet for the board, section {n}.",
]


def make_project(tmp: Path) -> Path:
    project = tmp / "project"
    shutil.copytree(ROOT / "sample-project", project, ignore=shutil.ignore_patterns(".llmops", "artifacts"))
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "sample project"]):
        subprocess.run(["git", *args], cwd=project, env=env, check=True)
    return project


def synthetic_records(project: Path, n: int, *, seed: int = 0) -> list[Any]:
    """Support questions (the reference and training prompts, lightly varied) with 10% drifted
    inputs, spread over the last 24 hours; 2% server errors, 1% overload refusals."""
    from llmops_cli.monitor import RequestRecord

    rng = random.Random(seed)
    eval_rows = [json.loads(line) for line in (project / "data" / "eval.jsonl").read_text().splitlines() if line]
    train_rows = [json.loads(line) for line in (project / "data" / "train.jsonl").read_text().splitlines() if line]
    questions = [r["question"] for r in eval_rows] + [r["messages"][-2]["content"] for r in train_rows]
    answers = [r["answer"] for r in eval_rows] + [r["messages"][-1]["content"] for r in train_rows]
    now = time.time()
    out = []
    for i in range(n):
        drifted = rng.random() < 0.1
        text = rng.choice(DRIFTED).format(n=i) if drifted else rng.choice(questions)
        if not drifted and rng.random() < 0.5:
            text = text.rstrip("?") + rng.choice([" please?", " thanks", "??", " (T2)"])
        roll = rng.random()
        status = 500 if roll < 0.02 else 429 if roll < 0.03 else 200
        out.append(
            RequestRecord(
                id=f"req-{i:08x}", ts=now - rng.uniform(0, 86_000), endpoint=rng.choice(ENDPOINTS), status=status,
                model="base@sha256:0123456789ab", adapter="support-lora@v1", prompt="answer@3f2a", git_sha="0" * 40,
                input=text, output=rng.choice(answers) if status == 200 else None,
                latency_ms=rng.lognormvariate(6.0, 0.5), prompt_tokens=rng.randint(20, 400),
                completion_tokens=rng.randint(5, 120), error=None if status == 200 else "overloaded",
            )
        )  # fmt: skip
    return out


def bench_ingest(records: list[Any], tmp: Path, naive_records: int) -> list[tuple[str, int, float]]:
    from llmops_cli.monitor import MonitorStore
    from llmops_cli.monitor.store_sqlite import _INSERT, _SCHEMA

    rows: list[tuple[str, int, float]] = []
    with MonitorStore(tmp / "log_many.db") as store:
        start = time.perf_counter()
        store.log_many(records)
        rows.append(("MonitorStore.log_many (ours, batched)", len(records), time.perf_counter() - start))
    with MonitorStore(tmp / "log_request.db") as store:
        start = time.perf_counter()
        for record in records:
            store.log_request(record)
        store.flush(timeout=None)
        rows.append(("MonitorStore.log_request + flush (server path)", len(records), time.perf_counter() - start))
    conn = sqlite3.connect(tmp / "naive.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # the store's durability setting: only batching differs
    conn.executescript(_SCHEMA)
    subset = records[:naive_records]
    start = time.perf_counter()
    for record in subset:
        conn.execute("BEGIN")
        conn.execute(_INSERT, record.row())
        conn.execute("COMMIT")
    rows.append(("one INSERT + COMMIT per record (alternative)", len(subset), time.perf_counter() - start))
    conn.close()
    return rows


def timed_report(cfg: Any, **options: Any) -> tuple[float, Any]:
    from llmops_cli.monitor.report import MonitorOptions, build_report

    start = time.perf_counter()
    report = build_report(cfg, MonitorOptions(continuous_eval=False, **options))
    return time.perf_counter() - start, report


def embed_rate(cfg: Any, texts: list[str]) -> float:
    """Texts per second through MiniLM, model already loaded."""
    from llmops_cli.retrieval import get_embedder

    embedder = get_embedder(cfg, "all-minilm-l6-v2")
    start = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--max-samples", type=int, default=1000, help="texts per side in our drift report")
    parser.add_argument("--naive-records", type=int, default=20_000, help="records the per-row-commit path writes")
    parser.add_argument("--embed-probe", type=int, default=2000, help="texts timed to extrapolate full embedding")
    parser.add_argument("--no-embedding", action="store_true", help="length and oov drift only (no MiniLM)")
    parser.add_argument("--full-embedding", action="store_true", help="really embed every record (GPU machines)")
    args = parser.parse_args()
    os.environ.update(GIT_ENV)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from llmops_cli.monitor import open_store
    from llmops_cli.validation import load_config

    with tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = make_project(tmp)
        cfg = load_config(project)
        records = synthetic_records(project, args.records)
        print(f"{len(records)} synthetic records; {os.cpu_count()} CPUs\n")

        ingest = bench_ingest(records, tmp, min(args.naive_records, len(records)))
        print(f"{'ingest':<50} {'records':>8} {'seconds':>8} {'records/s':>10}")
        for name, n, seconds in ingest:
            print(f"{name:<50} {n:>8} {seconds:>8.2f} {n / seconds:>10.0f}")
        ours_rate = ingest[0][1] / ingest[0][2]
        print(f"log_many vs per-row commit: {ours_rate / (ingest[2][1] / ingest[2][2]):.1f}x\n")

        with open_store(cfg) as store:
            store.log_many(records)
        embedding = not args.no_embedding
        if embedding:  # load the model and fill the reference cache once, as a second cron run would find them
            cold, _ = timed_report(cfg, max_samples=args.max_samples, seed=0)
            print(f"first report (imports torch, loads MiniLM, embeds the reference): {cold:.2f} s")
        no_emb_ours, report = timed_report(cfg, max_samples=args.max_samples, embedding=False)
        no_emb_all, _ = timed_report(cfg, max_samples=None, embedding=False)
        rows = [
            (f"ours: length+oov, {args.max_samples}/side", no_emb_ours, ""),
            ("all records: length+oov", no_emb_all, ""),
        ]
        if embedding:
            with_emb_ours, report = timed_report(cfg, max_samples=args.max_samples, seed=1)
            rows.append((f"ours: length+oov+embedding, {args.max_samples}/side", with_emb_ours, ""))
            if args.full_embedding:
                with_emb_all, _ = timed_report(cfg, max_samples=None)
                rows.append(("all records: length+oov+embedding", with_emb_all, ""))
            else:
                texts = [r.input for r in records[: args.embed_probe]]
                rate = embed_rate(cfg, texts)
                n_texts = sum(r.input is not None for r in records) + sum(r.output is not None for r in records)
                estimate = no_emb_all + n_texts / rate
                rows.append(
                    ("all records: length+oov+embedding", estimate, f"extrapolated: {n_texts} texts at {rate:.0f}/s")
                )
        print(f"\n{'drift report on ' + str(len(records)) + ' records':<50} {'seconds':>9}")
        for name, seconds, note in rows:
            print(f"{name:<50} {seconds:>9.2f}  {note}")
        print(f"\nlength+oov: all records / ours = {no_emb_all / no_emb_ours:.1f}x")
        if embedding:
            print(f"with embedding: all records / ours = {rows[-1][1] / rows[2][1]:.1f}x")
        print("\nmetrics of our last report:")
        metrics = report.metrics()
        for key in ("requests", "error_rate", "latency_ms.p95", "drift.length", "drift.oov", "drift.embedding"):
            print(f"  {key:<18} {metrics.get(key)}")
        print("  fired: " + (", ".join(a.message() for a in report.fired) or "none"))


if __name__ == "__main__":
    main()
