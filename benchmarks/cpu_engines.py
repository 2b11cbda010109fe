"""CPU engines side by side: llmops serve on transformers and on llama.cpp, and the stock llama.cpp server.

One run, one machine, the same 20 support questions (``max_tokens`` 32, temperature 0) sent over
HTTP to ``/v1/chat/completions``, from 1 client (one request after the other) and from 8 concurrent
clients, first on a quiet machine, then under a synthetic background load that the benchmark
starts and stops itself (``--busy 2`` processes spinning on the CPU, the shape of a shared CI
runner). The servers:

* ``llmops serve``, transformers float32, with the thread settings llmops had before (a torch
  thread per machine CPU, OpenMP's spinning wait: ``LLMOPS_THREADS=<cpus> OMP_WAIT_POLICY=ACTIVE``);
* ``llmops serve``, transformers float32, with today's defaults (threads from the CPUs this process
  may use, passive OpenMP wait);
* ``llmops serve`` on llama.cpp, with the q8_0 and q4_k_m GGUFs that ``llmops quantize`` builds
  (``method: gguf``) from the embedded SmolLM2-135M-Instruct;
* the stock llama.cpp server, ``python -m llama_cpp.server`` (llama-cpp-python's, same build), on
  the same two GGUF files, with its default settings.

It prints, per server and load: tokens/s, p50/p95 latency at 1 and 8 clients, RSS after warm-up,
and the ratios that matter: llmops on llama.cpp / the stock server (goal >= 0.9 at 1 and 8
clients) and each transformers path under load / quiet (goal: within 3x). The load average is
printed before and after each part. ``--eval`` adds the sample suite (``support-quality``, 50 cases,
no cache) on transformers and on llama.cpp: wall time and rougeL.

    python benchmarks/cpu_engines.py [--questions 20] [--busy 2] [--skip-transformers] [--eval]
                                     [--load-questions 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUESTIONS = [
    "What Wi-Fi band does the thermostat support?",
    "How do I reset the thermostat?",
    "Is Hearth+ billed monthly?",
    "How long does the sensor battery last?",
    "Can I use the thermostat without the app?",
    "How do I add a second home in the app?",
    "What does a blinking orange light mean?",
    "How do I cancel Hearth+?",
    "Does the thermostat work with heat pumps?",
    "How do I update the firmware?",
    "Where do I find my serial number?",
    "Can two people control the same thermostat?",
    "Why is the temperature reading wrong?",
    "How do I pair a new sensor?",
    "What happens if the Wi-Fi goes down?",
    "How do I change the temperature units?",
    "Is there a vacation mode?",
    "How do I get a refund?",
    "What is the warranty period?",
    "How do I contact support?",
]
MAX_TOKENS = 32
KEY = "bench-key"
PROJECT_YAML = """version: 1
name: engines-bench
models:
  base: {source: smollm2-135m-instruct, dtype: float32, runtime: transformers}
quantized:
  q8: {model: base, method: gguf, type: q8_0}
  q4: {model: base, method: gguf, type: q4_k_m}
"""


# --- servers ----------------------------------------------------------------------------------------


class Server:
    def __init__(self, label: str, command: list[str], env: dict[str, str], port: int, ready_path: str) -> None:
        self.label, self.port = label, port
        self.url = f"http://127.0.0.1:{port}"
        # A file, not a pipe: a server that logs more than a pipe holds would block on a full pipe.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self._wait(ready_path)

    def _wait(self, path: str) -> None:
        import httpx

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"{self.label}: server exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + path, timeout=5, headers=_auth()).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"{self.label}: not ready in 600 s")

    def rss_mb(self) -> float:
        import psutil

        proc = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20

    def stop(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def llmops_server(label: str, project: Path, model: str, env_extra: dict[str, str]) -> Server:
    port = free_port()
    env = {**os.environ, "LLMOPS_API_KEYS": KEY, **env_extra}
    command = [str(BIN / "llmops"), "-C", str(project), "serve", "--model", model, "--port", str(port)]
    command += ["--api-keys-env", "LLMOPS_API_KEYS", "--log-level", "warning"]
    return Server(label, command, env, port, "/ready")


def stock_server(label: str, gguf: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port)]
    command += ["--host", "127.0.0.1", "--n_ctx", "4096", "--model_alias", "base"]
    return Server(label, command, dict(os.environ), port, "/v1/models")


# --- clients ----------------------------------------------------------------------------------------


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def run_clients(server: Server, model: str, questions: list[str], clients: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    tokens: list[int] = []
    errors: list[str] = []
    pending = iter(questions)
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=server.url, headers=_auth(), timeout=1200) as client:
            while True:
                with lock:
                    question = next(pending, None)
                if question is None:
                    return
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": question}],
                    "max_tokens": MAX_TOKENS,
                    "temperature": 0,
                }
                started = time.perf_counter()
                answer = client.post("/v1/chat/completions", json=body)
                elapsed = time.perf_counter() - started
                with lock:
                    if answer.status_code != 200:
                        errors.append(f"{answer.status_code}: {answer.text[:200]}")
                        continue
                    latencies.append(elapsed)
                    tokens.append(int(answer.json()["usage"]["completion_tokens"]))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{server.label}: {len(errors)} failed requests, first: {errors[0]}")
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "tokens": sum(tokens),
        "wall_s": wall,
        "tokens_per_s": sum(tokens) / wall,
        "p50_s": statistics.median(ordered),
        "p95_s": ordered[max(0, round(0.95 * len(ordered)) - 1)],
    }


def measure(server: Server, model: str, questions: list[str]) -> dict[str, Any]:
    run_clients(server, model, questions[:2], 2)  # warm-up: caches, first-call work
    rss = server.rss_mb()
    return {
        "1 client": run_clients(server, model, questions, 1),
        "8 clients": run_clients(server, model, questions, 8),
        "rss_mb": rss,
    }


# --- background load --------------------------------------------------------------------------------


class Busy:
    """``n`` processes spinning on the CPU for the duration of a ``with`` block."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Busy:
        spin = "import time\nend = time.monotonic() + 7200\nwhile time.monotonic() < end: pass\n"
        self.procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(self.n)]
        time.sleep(2)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --- the run ----------------------------------------------------------------------------------------


def prepare(work: Path) -> tuple[Path, dict[str, Path]]:
    project = work / "proj"
    project.mkdir(parents=True)
    (project / "llmops.yaml").write_text(PROJECT_YAML)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"],
        cwd=project,
        check=True,
    )
    ggufs = {}
    for name in ("q8", "q4"):
        print(f"llmops quantize {name} (GGUF) ...", file=sys.stderr, flush=True)
        subprocess.run(
            [str(BIN / "llmops"), "-q", "-C", str(project), "quantize", name, "--no-check", "--no-baseline"],
            check=True,
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "bench",
                "GIT_AUTHOR_EMAIL": "b@localhost",
                "GIT_COMMITTER_NAME": "bench",
                "GIT_COMMITTER_EMAIL": "b@localhost",
            },  # fmt: skip
        )
        ggufs[name] = project / "artifacts" / "quantized" / name / "model.gguf"
    return project, ggufs


def configurations(project: Path, ggufs: dict[str, Path], args: argparse.Namespace) -> list[tuple[str, Any, str]]:
    """(label, a function that starts the server, the model id to request)."""
    from llmops_cli.engines.cpus import usable_cpus

    cpus = str(usable_cpus())
    configs: list[tuple[str, Any, str]] = []
    if not args.skip_transformers:
        before = {"LLMOPS_THREADS": str(os.cpu_count() or 1), "OMP_WAIT_POLICY": "ACTIVE"}
        configs.append(
            ("transformers fp32 (old threads)", lambda: llmops_server("tf-old", project, "base", before), "base")
        )
        configs.append(
            ("transformers fp32 (contention fixes)", lambda: llmops_server("tf", project, "base", {}), "base")
        )
    for name, kind in (("q8", "q8_0"), ("q4", "q4_k_m")):
        configs.append(
            (f"llmops on llama.cpp {kind}", lambda n=name: llmops_server(f"llmops-{n}", project, n, {}), name)
        )
        configs.append((f"stock llama.cpp server {kind}", lambda n=name: stock_server(f"stock-{n}", ggufs[n]), "base"))
    del cpus
    return configs


def run_part(configs: list[tuple[str, Any, str]], questions: list[str], tf_questions: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, start, model in configs:
        print(f"  {label} (load average {loadavg()})", file=sys.stderr, flush=True)
        server = start()
        try:
            results[label] = measure(server, model, tf_questions if label.startswith("transformers") else questions)
        finally:
            server.stop()
    return results


def table(title: str, results: dict[str, Any]) -> None:
    print(f"\n{title}")
    columns = ("1 client tok/s", 15), ("p50 s", 7), ("8 clients tok/s", 16), ("p50 s", 7), ("p95 s", 7), ("RSS MB", 8)
    print(f"{'server':40} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for label, r in results.items():
        one, eight = r["1 client"], r["8 clients"]
        print(
            f"{label:40} {one['tokens_per_s']:15.2f} {one['p50_s']:7.2f} {eight['tokens_per_s']:16.2f} "
            f"{eight['p50_s']:7.2f} {eight['p95_s']:7.2f} {r['rss_mb']:8.0f}"
        )


def ratios(quiet: dict[str, Any], loaded: dict[str, Any] | None) -> list[str]:
    lines = []
    for part, results in (("quiet", quiet), ("under load", loaded)):
        if not results:
            continue
        for kind in ("q8_0", "q4_k_m"):
            ours, stock = results.get(f"llmops on llama.cpp {kind}"), results.get(f"stock llama.cpp server {kind}")
            if ours and stock:
                for clients in ("1 client", "8 clients"):
                    ratio = ours[clients]["tokens_per_s"] / stock[clients]["tokens_per_s"]
                    verdict = "ok" if ratio >= 0.9 else "BELOW GOAL 0.9"
                    lines.append(f"{part}, {kind}, {clients}: llmops / stock llama.cpp = {ratio:.2f}x ({verdict})")
        tf = results.get("transformers fp32 (contention fixes)")
        if tf and results.get("llmops on llama.cpp q8_0"):
            speedup = results["llmops on llama.cpp q8_0"]["1 client"]["tokens_per_s"] / tf["1 client"]["tokens_per_s"]
            lines.append(f"{part}: llama.cpp q8_0 / transformers fp32, 1 client = {speedup:.1f}x")
    if loaded:
        for label in ("transformers fp32 (old threads)", "transformers fp32 (contention fixes)"):
            if label in quiet and label in loaded:
                for clients in ("1 client", "8 clients"):
                    slow = quiet[label][clients]["tokens_per_s"] / loaded[label][clients]["tokens_per_s"]
                    verdict = "ok" if slow <= 3 else "ABOVE GOAL 3x"
                    lines.append(f"{label}, {clients}: quiet / under load = {slow:.2f}x slower ({verdict})")
    return lines


def eval_part(work: Path) -> dict[str, Any]:
    """support-quality (50 cases, no cache) with the base model on each engine: wall time and rougeL."""
    out: dict[str, Any] = {}
    for runtime in ("transformers", "llama-cpp"):
        project = work / f"sample-{runtime}"
        shutil.copytree(ROOT / "sample-project", project)
        config = project / "llmops.yaml"
        config.write_text(
            config.read_text().replace("    dtype: float32 ", f"    runtime: {runtime}\n    dtype: float32 ")
        )
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
        subprocess.run(["git", "add", "-A"], cwd=project, check=True)
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@l", "commit", "-qm", "s"], cwd=project, check=True
        )
        subprocess.run([str(BIN / "llmops"), "-q", "-C", str(project), "index", "kb"], check=True)
        print(f"  eval support-quality on {runtime} (load average {loadavg()})", file=sys.stderr, flush=True)
        started = time.perf_counter()
        proc = subprocess.run(
            [
                str(BIN / "llmops"),
                "-q",
                "-C",
                str(project),
                "eval",
                "support-quality",
                "--models",
                "base",
                "--no-cache",
                "--no-save",
                "--json",
            ],  # fmt: skip
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        rouge = None
        try:
            data = json.loads(proc.stdout)
            rouge = _find_metric(data, "rougeL")
        except ValueError:
            pass
        out[runtime] = {"wall_s": wall, "rougeL": rouge, "exit": proc.returncode}
    return out


def _find_metric(data: Any, metric: str) -> float | None:
    """The mean of ``metric`` anywhere in the eval JSON (one suite, one model)."""
    if isinstance(data, dict):
        if metric in data and isinstance(data[metric], dict) and "mean" in data[metric]:
            return float(data[metric]["mean"])
        for value in data.values():
            found = _find_metric(value, metric)
            if found is not None:
                return found
    if isinstance(data, list):
        for value in data:
            found = _find_metric(value, metric)
            if found is not None:
                return found
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--load-questions", type=int, default=8, help="questions for transformers under load")
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the loaded part (0: skip it)")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--eval", action="store_true", help="also run the sample eval suite on each engine")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args()
    from llmops_cli.engines import llama_cpp
    from llmops_cli.engines.cpus import usable_cpus

    if not llama_cpp.available():
        raise SystemExit(f"llama.cpp engine: {llama_cpp.status().reason}. {llama_cpp.status().hint}")
    questions = (QUESTIONS * 4)[: args.questions]
    print(f"machine: {os.cpu_count()} CPUs, {usable_cpus()} usable; load average {loadavg()}")
    work = Path(tempfile.mkdtemp(prefix="llmops-engines-bench-"))
    report: dict[str, Any] = {"cpus": usable_cpus(), "questions": len(questions), "max_tokens": MAX_TOKENS}
    try:
        project, ggufs = prepare(work)
        configs = configurations(project, ggufs, args)
        print(f"quiet part (load average {loadavg()})", file=sys.stderr)
        report["quiet_loadavg_before"] = loadavg()
        quiet = run_part(configs, questions, questions)
        report["quiet_loadavg_after"] = loadavg()
        report["quiet"] = quiet
        loaded = None
        if args.busy:
            with Busy(args.busy):
                print(f"under load: {args.busy} busy processes (load average {loadavg()})", file=sys.stderr)
                report["load_loadavg_before"] = loadavg()
                loaded = run_part(configs, questions, questions[: args.load_questions])
                report["load_loadavg_after"] = loadavg()
            report["loaded"] = loaded
        if args.eval:
            report["eval"] = eval_part(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table(f"quiet (load average {report['quiet_loadavg_before']} -> {report['quiet_loadavg_after']})", quiet)
    if loaded:
        table(
            f"under load: {args.busy} busy processes (load average {report['load_loadavg_before']} -> "
            f"{report['load_loadavg_after']})",
            loaded,
        )
    lines = ratios(quiet, loaded)
    report["ratios"] = lines
    print()
    for line in lines:
        print(line)
    if "eval" in report:
        print("\nsupport-quality (50 cases, base model, no cache):")
        for runtime, r in report["eval"].items():
            rouge = "n/a" if r["rougeL"] is None else f"{r['rougeL']:.4f}"
            print(f"  {runtime:14} {r['wall_s']:7.1f} s  rougeL {rouge}  (exit {r['exit']})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
