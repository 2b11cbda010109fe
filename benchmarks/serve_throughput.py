"""Server throughput: 16 concurrent clients vs one client in sequence, and monitor-store ingest.

Part 1 starts ``llmops serve``'s app (FastAPI + uvicorn) in a subprocess on a loopback ephemeral
port over a scratch ``llmops init`` project whose ``base`` model is the embedded SmolLM2, then
sends the same 200 chat requests (greedy, small ``max_tokens``) twice: from one client, one after
the other (the obvious way to call a model), and from 16 client threads at once, which the server
merges into batched ``generate`` calls. The two modes take turns in a few rounds against the same
server, so a neighbour process that grabs the CPU for a while slows both alike. It prints
requests/s, p50/p95 latency and the ratio, checks that there was no 5xx, and that every request is
in the monitor store. ``--no-batching`` adds a third run: 16 clients against a server with
``--max-batch 1`` (queued, not batched).

Part 2 writes 100k synthetic request records to a fresh monitor store three ways: through the
server's path (``log_request``: a queue and a background writer committing hundreds of rows per
transaction), with ``log_many`` (one caller, big transactions), and the obvious alternative (one
INSERT and commit per record, same WAL settings), and prints records/s and the ratios.

Part 3 (``--gateway``, alone) measures the p50 latency ``llmops serve --upstream`` adds: one client
sends the same chat requests to an upstream directly and through a gateway in front of it,
interleaved one by one in the same run, and prints both p50s, their difference and ratio (goal:
<= 5 ms added) and the load average. The upstream is by default a minimal OpenAI-compatible server
(FastAPI + uvicorn, a fixed answer in about a millisecond), so the gateway's own cost is not buried
under the model's time; ``--gateway-model`` puts an ``llmops serve`` with SmolLM2 there instead.

    python benchmarks/serve_throughput.py [--requests 200] [--clients 16] [--max-tokens 16] [--rounds 5]
                                          [--records 100000] [--no-batching] [--skip-server] [--threads N]
    python benchmarks/serve_throughput.py --gateway [--gateway-requests 500] [--gateway-model] [--gateway-max-tokens 4]
    scripts/with-postgres.sh python benchmarks/serve_throughput.py --shared-store [--shared-records 20000]

Part 4 (``--shared-store``, alone, or after part 2; needs ``LLMOPS_TEST_POSTGRES_URL``, which
``scripts/with-postgres.sh`` sets) starts 2 writer processes that each log ``--shared-records``
rows through ``MonitorStore.log_request`` into one store at once, first one SQLite file, then a
fresh PostgreSQL database, and prints rows/s over the span from the first row to the last flush
(goal for PostgreSQL: >= 2,000 rows/s), the rows found (exactly 2 x N), and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmops_cli.monitor import MonitorStore, RequestRecord  # noqa: E402

QUESTIONS = [
    "How do I reset my password?",
    "Why was my card declined?",
    "How long does shipping take to Canada?",
    "What is your refund policy?",
    "My order arrived damaged. What should I do?",
    "How do I cancel my subscription?",
    "Do you offer student discounts?",
    "The app crashes when I open settings. Any fix?",
    "How can I download my invoices?",
    "Is two-factor authentication available?",
    "Where is my order?",
    "What payment methods do you accept?",
    "I was charged twice this month. Can you help?",
    "How do I export my data to CSV?",
    "What are your support hours?",
    "How do I delete my account permanently?",
]
KEY = "bench-key"


# --- the server side (this file, run as a subprocess) -------------------------------------------


def serve(project: str, port: int, max_batch: int) -> None:
    threads = int(os.environ.get("BENCH_TORCH_THREADS", "0"))
    if threads:
        import torch

        torch.set_num_threads(threads)
    from llmops_cli.serve import ServeOptions, create_app, run_server
    from llmops_cli.validation import load_config

    options = ServeOptions(port=port, api_keys=(KEY,), max_batch=max_batch, max_concurrency=64)
    run_server(create_app(load_config(Path(project)), options=options), options, log_level="warning", access_log=False)


def start_server(project: Path, max_batch: int) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, __file__, "--serve", str(project), str(port), str(max_batch)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return wait_ready(proc, f"http://127.0.0.1:{port}")


def wait_ready(proc: subprocess.Popen[str], url: str) -> tuple[subprocess.Popen[str], str]:
    """Wait until the server at ``url`` answers /ready with 200 (300 s at most)."""
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(url + "/ready", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready in 300 s")


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(2)  # SIGINT: graceful shutdown, the monitor store writes what it holds
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- the client side --------------------------------------------------------------------------------


def body(i: int, max_tokens: int, model: str = "base") -> dict[str, Any]:
    question = QUESTIONS[i % len(QUESTIONS)]
    return {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens}


def load(url: str, indices: list[int], clients: int, max_tokens: int) -> dict[str, Any]:
    """Send the chat requests numbered ``indices`` from ``clients`` threads; latencies and statuses."""
    import httpx

    out: dict[str, Any] = {"latencies": [], "statuses": [], "ids": []}
    pending = iter(indices)
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=600) as client:
            while True:
                with lock:
                    i = next(pending, None)
                if i is None:
                    return
                started = time.perf_counter()
                answer = client.post("/v1/chat/completions", json=body(i, max_tokens))
                elapsed = time.perf_counter() - started
                with lock:
                    out["latencies"].append(elapsed)
                    out["statuses"].append(answer.status_code)
                    if answer.status_code == 200:
                        out["ids"].append(answer.json()["id"])

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["wall_s"] = time.perf_counter() - started
    return out


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(x for p in parts for x in p["latencies"])
    statuses = [x for p in parts for x in p["statuses"]]
    wall = sum(p["wall_s"] for p in parts)
    return {
        "wall_s": wall,
        "rps": len(latencies) / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[max(0, int(round(0.95 * len(latencies))) - 1)],
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "ids": [i for p in parts for i in p["ids"]],
    }


def measure(project: Path, modes: list[tuple[str, int]], args: argparse.Namespace, max_batch: int) -> dict[str, Any]:
    """Each mode (label, clients) sends ``args.requests`` requests against one server, the modes
    taking turns in ``args.rounds`` rounds so a busy neighbour slows each mode alike."""
    proc, url = start_server(project, max_batch)
    parts: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in modes}
    try:
        load(url, list(range(8)), max(c for _, c in modes), args.max_tokens)  # warm-up, not counted
        per_round = -(-args.requests // args.rounds)
        for r in range(args.rounds):
            chunk = list(range(r * per_round, min(args.requests, (r + 1) * per_round)))
            for label, clients in modes:
                parts[label].append(load(url, chunk, clients, args.max_tokens))
            print(f"  max_batch {max_batch}: round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        stop_server(proc)
    results = {label: merge(p) for label, p in parts.items()}
    with MonitorStore(project / ".llmops" / "monitor.db") as logged:
        for result in results.values():
            result["logged"] = sum(1 for i in result["ids"] if logged.has_request(i))
    return results


def server_part(args: argparse.Namespace) -> None:
    from llmops_cli.scaffold import init_project

    work = Path(tempfile.mkdtemp(prefix="llmops-serve-bench-"))
    project = work / "proj"
    init_project(project, name="bench")  # base = the embedded SmolLM2-135M-Instruct
    sequential, concurrent = "1 client, sequential", f"{args.clients} clients"
    results = measure(project, [(sequential, 1), (concurrent, args.clients)], args, args.max_batch)
    if args.no_batching:
        unbatched = f"{args.clients} clients, --max-batch 1"
        results.update(measure(project, [(unbatched, args.clients)], args, 1))

    print(
        f"\nServer throughput: {args.requests} chat requests per mode, max_tokens {args.max_tokens}, greedy, "
        f"SmolLM2-135M on CPU, loopback, {os.cpu_count()} CPUs, server max_batch {args.max_batch}"
    )
    print(f"{'mode':<32} {'req/s':>8} {'p50 s':>8} {'p95 s':>8} {'wall s':>8}  statuses       in store")
    for label, r in results.items():
        statuses = json.dumps(r["statuses"])
        print(
            f"{label:<32} {r['rps']:8.2f} {r['p50_s']:8.2f} {r['p95_s']:8.2f} {r['wall_s']:8.1f}  "
            f"{statuses:<14} {r['logged']}/{len(r['ids'])}"
        )
    print(
        f"throughput ratio ({concurrent} / sequential): {results[concurrent]['rps'] / results[sequential]['rps']:.2f}x"
    )
    if args.no_batching:
        gain = results[concurrent]["rps"] / results[unbatched]["rps"]
        print(f"micro-batching gain ({concurrent}, max_batch {args.max_batch} / max_batch 1): {gain:.2f}x")
    bad = sum(v for r in results.values() for k, v in r["statuses"].items() if k.startswith("5"))
    missing = sum(len(r["ids"]) - r["logged"] for r in results.values())
    print(f"5xx answers: {bad}; answered requests missing from the monitor store: {missing}")


# --- gateway overhead -------------------------------------------------------------------------------


def start_cli_server(project: Path, *args: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``llmops -C project serve ARGS`` on a free port, until /ready."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "llmops_cli", "-C", str(project), "serve", "--port", str(port)]
    command += ["--log-level", "warning", *args]
    proc = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    return wait_ready(proc, f"http://127.0.0.1:{port}")


def gateway_part(args: argparse.Namespace) -> None:
    """p50 latency the gateway adds: the same requests to the upstream directly and through
    ``llmops serve --upstream``, interleaved one by one (one client), in the same run."""
    import httpx

    from llmops_cli.scaffold import init_project

    work = Path(tempfile.mkdtemp(prefix="llmops-gateway-bench-"))
    project = work / "proj"
    init_project(project, name="bench")  # base = the embedded SmolLM2-135M-Instruct
    if args.gateway_model:
        upstream, up_url = start_cli_server(project, "--store", str(work / "up.db"), env={"LLMOPS_API_KEYS": KEY})
        what = f"SmolLM2-135M upstream (llmops serve) on CPU, max_tokens {args.gateway_max_tokens}, greedy"
        model = "base"
    else:
        upstream, up_url = start_stub_upstream()
        what = "a minimal OpenAI-compatible upstream (fixed answer)"
        model = "stub"
    gateway, gw_url = start_cli_server(
        project,
        *("--upstream", up_url, "--upstream-key-env", "BENCH_UP_KEY", "--store", str(work / "gw.db")),
        env={"LLMOPS_API_KEYS": KEY, "BENCH_UP_KEY": KEY},
    )
    latencies: dict[str, list[float]] = {"direct": [], "gateway": []}
    statuses: dict[str, int] = {}
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
            for i in range(-5, args.gateway_requests):  # 5 warm-up pairs, not counted
                order = [("direct", up_url), ("gateway", gw_url)]
                for label, url in order if i % 2 == 0 else order[::-1]:
                    started = time.perf_counter()
                    answer = client.post(url + "/v1/chat/completions", json=body(i, args.gateway_max_tokens, model))
                    elapsed = time.perf_counter() - started
                    statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
                    if i >= 0:
                        latencies[label].append(elapsed * 1000)
    finally:
        stop_server(gateway)
        stop_server(upstream)
    direct, through = statistics.median(latencies["direct"]), statistics.median(latencies["gateway"])
    paired = statistics.median(g - d for d, g in zip(latencies["direct"], latencies["gateway"], strict=True))
    print(
        f"\nGateway overhead: {args.gateway_requests} chat requests each way, interleaved, one client, {what}, loopback"
    )
    print(f"{'path':<24} {'p50 ms':>8} {'p95 ms':>8}")
    for label, values in latencies.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{label:<24} {statistics.median(values):8.2f} {p95:8.2f}")
    print(
        f"p50 added by the gateway: {through - direct:.2f} ms (median of paired differences {paired:.2f} ms; "
        f"goal <= 5 ms); ratio gateway/direct p50: {through / direct:.3f}x"
    )
    print(f"statuses: {json.dumps(statuses)}; load average (1, 5, 15 min): {os.getloadavg()}")
    if set(statuses) != {"200"}:
        raise SystemExit("some requests failed: the latencies above are not comparable")


def stub_upstream(port: int) -> None:
    """A minimal OpenAI-compatible server: /v1/models and a fixed /v1/chat/completions answer."""
    import uvicorn
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "bench"}]}

    async def chat(request: Request) -> dict[str, Any]:
        await request.json()
        return {
            "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()), "model": "stub",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }  # fmt: skip

    chat.__annotations__["request"] = Request  # a real class: this module's annotations are strings
    app.post("/v1/chat/completions")(chat)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def start_stub_upstream() -> tuple[subprocess.Popen[str], str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--stub-upstream", str(port)], text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the stub upstream did not start")


# --- monitor store ingest -----------------------------------------------------------------------------


def records(n: int, start: float) -> list[RequestRecord]:
    return [
        RequestRecord(
            id=f"bench-{i:08d}",
            ts=start + i * 0.01,
            endpoint="/v1/chat/completions",
            status=200 if i % 50 else 500,
            model="base@sha256:0123456789ab",
            package="bench@v1",
            git_sha="0" * 40,
            input=QUESTIONS[i % len(QUESTIONS)],
            output="You can do that from Settings > Account; the change applies at once.",
            latency_ms=120.0 + i % 300,
            prompt_tokens=40 + i % 20,
            completion_tokens=16,
            meta={"params": {"temperature": 0.0, "max_new_tokens": 16}},
        )
        for i in range(n)
    ]


def ingest_part(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="llmops-ingest-bench-"))
    data = records(n, time.time())
    rates: dict[str, float] = {}

    store = MonitorStore(work / "queued.db")
    started = time.perf_counter()
    for record in data:
        store.log_request(record)
    enqueued = time.perf_counter() - started
    store.flush(timeout=None)
    rates["log_request (queue + writer thread)"] = n / (time.perf_counter() - started)
    assert store.count() == n
    store.close()

    store = MonitorStore(work / "many.db")
    started = time.perf_counter()
    store.log_many(data)
    rates["log_many (one caller)"] = n / (time.perf_counter() - started)
    store.close()

    conn = sqlite3.connect(work / "naive.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    store = MonitorStore(work / "naive.db")  # the same schema
    store.close()
    insert = "INSERT INTO requests (id, ts, endpoint, model, adapter, prompt, package, git_sha, input, output, latency_ms, prompt_tokens, completion_tokens, status, error, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: E501
    started = time.perf_counter()
    for record in data:
        conn.execute("BEGIN")
        conn.execute(insert, record.row())
        conn.execute("COMMIT")
    rates["one INSERT + COMMIT per record"] = n / (time.perf_counter() - started)
    conn.close()

    print(f"\nMonitor store ingest: {n} synthetic records (SQLite WAL, synchronous=NORMAL)")
    print(f"{'path':<40} {'records/s':>12}")
    for label, rate in rates.items():
        print(f"{label:<40} {rate:12,.0f}")
    naive = rates["one INSERT + COMMIT per record"]
    print(
        f"ratio log_request / per-record commit: {rates['log_request (queue + writer thread)'] / naive:.1f}x; "
        f"log_many / per-record commit: {rates['log_many (one caller)'] / naive:.1f}x"
    )
    print(f"(the server's own cost per log_request call: {enqueued / n * 1e6:.1f} us to enqueue)")


# --- shared store: 2 writer processes, PostgreSQL vs SQLite ----------------------------------------


def ingest_writer(location: str, prefix: str, n: int) -> None:
    """One writer process (run as a subprocess): ``n`` rows through ``log_request``; prints its span."""
    data = records(n, time.time())
    for record in data:
        record.id = f"{prefix}-{record.id}"
    with MonitorStore(location) as store:
        started = time.time()
        for record in data:
            store.log_request(record)
        assert store.flush(timeout=None)
        print(json.dumps({"start": started, "end": time.time(), "errors": store.write_errors}), flush=True)


def _two_writers(location: str, n: int) -> tuple[float, int]:
    """Rows/s from 2 processes writing ``n`` rows each into ``location`` at once, and the rows found."""
    argv = [sys.executable, __file__, "--ingest-writer", location]
    procs = [subprocess.Popen([*argv, name, str(n)], stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    spans = [json.loads(p.communicate(timeout=900)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs) and not any(s["errors"] for s in spans), spans
    elapsed = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    with MonitorStore(location) as store:
        found = store.count()
    return 2 * n / elapsed, found


def shared_store_part(n: int) -> None:
    """PostgreSQL ingest (goal >= 2,000 rows/s from 2 writer processes) beside SQLite, in one run."""
    base = os.environ.get("LLMOPS_TEST_POSTGRES_URL")
    if not base:
        print("\nShared store ingest: skipped (no LLMOPS_TEST_POSTGRES_URL; run it as "
              "scripts/with-postgres.sh python benchmarks/serve_throughput.py --shared-store)")  # fmt: skip
        return
    import psycopg

    name = f"bench_{os.getpid()}"
    url = base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    rates: dict[str, tuple[float, int]] = {}
    try:
        rates["SQLite (one WAL file)"] = _two_writers(
            str(Path(tempfile.mkdtemp(prefix="llmops-shared-bench-")) / "m.db"), n
        )
        rates["PostgreSQL"] = _two_writers(url, n)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\nShared store ingest: 2 writer processes x {n:,} rows through MonitorStore.log_request")
    print(f"{'store':<24} {'rows/s':>10} {'rows found':>12}")
    for label, (rate, found) in rates.items():
        print(f"{label:<24} {rate:10,.0f} {found:12,}")
    pg = rates["PostgreSQL"][0]
    print(f"PostgreSQL goal >= 2,000 rows/s: {'met' if pg >= 2000 else 'NOT met'} ({pg:,.0f}); "
          f"PostgreSQL / SQLite: {pg / rates['SQLite (one WAL file)'][0]:.2f}x")  # fmt: skip
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=8, help="the server's micro-batch size")
    parser.add_argument("--rounds", type=int, default=5, help="the modes take turns this many times")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--no-batching", action="store_true", help="also run 16 clients against --max-batch 1")
    parser.add_argument("--skip-server", action="store_true", help="only the monitor store ingest")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the server (default: torch's)")
    parser.add_argument("--gateway", action="store_true", help="only the gateway overhead (llmops serve --upstream)")
    parser.add_argument("--gateway-requests", type=int, default=500)
    parser.add_argument("--gateway-max-tokens", type=int, default=4)
    parser.add_argument("--gateway-model", action="store_true", help="SmolLM2 behind the gateway, not a stub")
    parser.add_argument("--stub-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=3, metavar=("PROJECT", "PORT", "MAX_BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--shared-store", action="store_true", help="only the 2-process PostgreSQL/SQLite ingest")
    parser.add_argument("--shared-records", type=int, default=20_000, help="rows per writer process")
    parser.add_argument("--ingest-writer", nargs=3, metavar=("LOCATION", "PREFIX", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub_upstream:
        stub_upstream(args.stub_upstream)
        return
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), int(args.serve[2]))
        return
    if args.ingest_writer:
        ingest_writer(args.ingest_writer[0], args.ingest_writer[1], int(args.ingest_writer[2]))
        return
    if args.shared_store:
        shared_store_part(args.shared_records)
        return
    if args.threads:
        os.environ["BENCH_TORCH_THREADS"] = str(args.threads)  # read by the server subprocess
    if args.gateway:
        gateway_part(args)
        return
    if not args.skip_server:
        server_part(args)
    ingest_part(args.records)
    shared_store_part(args.shared_records)


if __name__ == "__main__":
    main()
