"""Memory, speed and quality of ``llmops quantize`` on SmolLM2-135M-Instruct against the unquantized model.

One run builds the 8-bit (LLM.int8) and 4-bit (nf4, double quant) variants of the embedded SmolLM2 with
``llmops quantize`` (in a temporary copy of sample-project/, so they are registered there, not here),
and measures them and the unquantized model in bfloat16 and float32 (the project's dtype) the same way:
load from disk (timed), ``model.get_memory_footprint()``, then the median time to generate exactly
``--tokens`` tokens greedily from one fixed prompt after a warm-up. Goals: footprint 4-bit/bf16 <= 0.45
and 8-bit/bf16 <= 0.65.

Quality: the sample suite ``support-quality`` (the RAG chain over the sample docs, 50 questions) runs on
the unquantized base and on each variant through the quantize quality check, without an adapter (the
sample's base-4bit/base-8bit merge a tuned adapter first; here the base alone is compared so nothing
needs training); the drop is original - quantized. ``--no-quality`` skips it, ``--limit`` shortens it.
CPU timings on a shared 2-core machine are noisy; the load average is printed with the table. The
default ``--threads 1`` keeps them usable there: with two OpenMP threads and other processes busy,
each matmul waits for a descheduled thread, and greedy decoding of SmolLM2 was measured 30x slower
(2.2 s instead of 0.07 s per token) than with one thread.

    python benchmarks/quantize_footprint.py [--tokens 32] [--repeats 3] [--threads 1] [--no-quality] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUITE = "support-quality"
VARIANTS = {
    "bench-8bit": {"model": "base", "bits": 8},
    "bench-4bit": {"model": "base", "bits": 4, "quant_type": "nf4", "double_quant": True},
}
GOALS = {"bench-4bit": 0.45, "bench-8bit": 0.65}


def make_project(workdir: Path, quality: bool) -> Path:
    """A git copy of sample-project/ with the two benchmark variants added under quantized:."""
    import yaml

    root = workdir / "sample"
    shutil.copytree(ROOT / "sample-project", root, ignore=shutil.ignore_patterns(".llmops", "artifacts"))
    doc = yaml.safe_load((root / "llmops.yaml").read_text())
    doc["quantized"].update(
        {name: {**entry, **({"check_with": SUITE} if quality else {})} for name, entry in VARIANTS.items()}
    )
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "sample"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env)
    return root


def measure_unquantized(folder: Path, dtype: str, device: str, tokens: int, repeats: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmops_cli.quantize.measure import measure
    from llmops_cli.tune.modeling import no_progress_bars

    def load() -> Any:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype), local_files_only=True)
        return model.to(device).eval()

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    with no_progress_bars():
        return measure(dtype, load, tokenizer, new_tokens=tokens, repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per timed generation")
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per variant (median kept)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-quality", action="store_true", help=f"skip the {SUITE} comparison")
    parser.add_argument("--limit", type=int, default=None, help=f"only the first N cases of {SUITE}")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from llmops_cli.config.project import ModelSpec
    from llmops_cli.models import materialize
    from llmops_cli.providers.quantized import quiet_bitsandbytes
    from llmops_cli.quantize import quantize
    from llmops_cli.validation import load_config

    quiet_bitsandbytes()
    folder = materialize(ModelSpec(name="base", source="smollm2-135m-instruct"), ROOT)
    quality = not args.no_quality
    rows: list[dict[str, Any]] = []
    for dtype in ("float32", "bfloat16"):
        m = measure_unquantized(folder, dtype, args.device, args.tokens, args.repeats)
        rows.append({"variant": f"unquantized {dtype}", "m": m, "disk": None, "quantize_s": None, "quality": None})
        print(f"measured unquantized {dtype}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="llmops-quantize-bench-") as tmp:
        root = make_project(Path(tmp), quality)
        config = load_config(root)
        if quality:
            _limit_suite(args.limit)
            from llmops_cli.retrieval import build_index

            print("indexing the sample docs (kb) for the RAG chain", file=sys.stderr)
            build_index(config, "kb")
        for name in VARIANTS:
            result = quantize(
                config, name, check=quality, baseline=False, device=args.device, new_tokens=args.tokens,
                repeats=args.repeats, progress=lambda message, done=None, total=None: _echo(message, done, total),
            )  # fmt: skip
            rows.append({"variant": name, "m": result.quantized, "disk": result.weights_bytes,
                         "quantize_s": result.quantize_s, "quality": result.quality,
                         "source_disk": result.source_weights_bytes})  # fmt: skip
    _report(rows, args)


def _limit_suite(limit: int | None) -> None:
    """--limit: run only the first N cases of the suite (the runner's EvalOptions.limit)."""
    if limit is None:
        return
    import llmops_cli.evals.runner as runner

    original = runner.run_suite

    def limited(config: Any, suite: str, options: Any = None, progress: Any = None) -> Any:
        from dataclasses import replace

        return original(config, suite, replace(options or runner.EvalOptions(), limit=limit), progress)

    runner.run_suite = limited  # type: ignore[assignment]


def _echo(message: str, done: int | None, total: int | None) -> None:
    if done is None or done == total:
        print(f"  {message}{f' ({done}/{total})' if done else ''}", file=sys.stderr)


def _report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    bf16 = next(r["m"] for r in rows if r["variant"] == "unquantized bfloat16")
    fp32 = next(r["m"] for r in rows if r["variant"] == "unquantized float32")
    header = (
        f"{'variant':<22}{'footprint':>11}{'x bf16':>8}{'disk':>10}{'load s':>8}{'ms/token':>10}{'x bf16':>8}"
        f"{'x fp32':>8}"
    )
    import torch

    print(f"\nSmolLM2-135M-Instruct on {args.device}, {args.tokens} greedy tokens, median of {args.repeats}, "
          f"{torch.get_num_threads()} torch thread(s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          "cores")  # fmt: skip
    print(header)
    print("-" * len(header))
    for row in rows:
        m = row["m"]
        disk = "-" if row["disk"] is None else f"{row['disk'] / 2**20:.1f} MB"
        print(
            f"{row['variant']:<22}{m.footprint_bytes / 2**20:>8.1f} MB{m.footprint_bytes / bf16.footprint_bytes:>8.3f}"
            f"{disk:>10}{m.load_s:>8.2f}{m.ms_per_token:>10.1f}{m.ms_per_token / bf16.ms_per_token:>8.2f}"
            f"{m.ms_per_token / fp32.ms_per_token:>8.2f}"
        )
    print()
    for row in rows:
        if row["variant"] in GOALS:
            ratio = row["m"].footprint_bytes / bf16.footprint_bytes
            goal = GOALS[row["variant"]]
            verdict = "meets" if ratio <= goal else "MISSES"
            print(f"footprint {row['variant']}/bf16 = {ratio:.3f} ({verdict} the goal <= {goal}); "
                  f"quantized in {row['quantize_s']:.1f} s; answer: {row['m'].sample[:60]!r}")  # fmt: skip
    quality_rows = [r for r in rows if r["quality"] is not None]
    if quality_rows:
        print(f"\nquality on {SUITE} (drop = unquantized base - quantized, in the metric's units):")
        for row in quality_rows:
            for d in row["quality"].metrics:
                print(f"  {row['variant']:<12}{d.metric:<14} base {_num(d.original)}  quantized {_num(d.quantized)}"
                      f"  drop {_num(d.delta)}")  # fmt: skip


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
