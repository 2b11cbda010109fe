"""Eval speed on the sample project's support-quality suite (RAG chain on the embedded SmolLM2).

Two comparisons, each measured in one run of this script:

1. cold vs cached: ``llmops eval support-quality --no-cache`` in a fresh process (everything
   generated), then the same command without ``--no-cache`` (every output from the cache), also in a
   fresh process. Goal: the cached re-run takes at most 10% of the cold run.
2. batched vs sequential: ``run_suite`` in one process with the model already loaded, batch size 1
   (one case at a time, the obvious loop) against batch size 8 (worker threads feeding the
   micro-batcher); the cache is not read. Also counts how many answers differ between the two
   (left padding can flip a greedy token on rare occasions).

    python benchmarks/eval_speed.py [--cases 24] [--batch-size 8]

The chain's LoRA step is run without its adapter (``--no-adapters``) so the benchmark needs no
training first; the work per case is the same.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LLMOPS = str(Path(sys.executable).with_name("llmops"))
SUITE = "support-quality"


def sh(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 5):  # 5 = a quality gate failed, which is not the benchmark's business
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="llmops-bench-eval-"))
    project = work / "project"
    shutil.copytree(ROOT / "sample-project", project)
    for role in ("AUTHOR", "COMMITTER"):
        os.environ.setdefault(f"GIT_{role}_NAME", "bench")
        os.environ.setdefault(f"GIT_{role}_EMAIL", "bench@localhost")
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "sample"]):
        subprocess.run(cmd, cwd=project, check=True)
    print(f"project copy: {project}; preparing the model and the kb index ...", flush=True)
    sh(LLMOPS, "models", "prepare", "base", cwd=project)
    sh(LLMOPS, "index", "kb", cwd=project)

    common = [LLMOPS, "-q", "eval", SUITE, "--limit", str(args.cases), "--no-adapters", "--no-save"]
    cold = sh(*common, "--no-cache", cwd=project)
    cached = sh(*common, cwd=project)

    from llmops_cli.evals.runner import EvalOptions, run_suite
    from llmops_cli.validation import load_config

    config = load_config(project)
    options = {"use_adapters": False, "use_cache": False}
    run_suite(config, SUITE, EvalOptions(**options, limit=1))  # load the model and the index first
    timings = {}
    answers = {}
    for size in (1, args.batch_size):
        start = time.perf_counter()
        result = run_suite(config, SUITE, EvalOptions(**options, limit=args.cases, batch_size=size))
        timings[size] = time.perf_counter() - start
        answers[size] = [c.prediction for c in result.cases]
    differ = sum(a != b for a, b in zip(answers[1], answers[args.batch_size], strict=True))

    print(f"\n{SUITE}: {args.cases} cases, RAG chain on SmolLM2-135M (CPU, {os.cpu_count()} cores)\n")
    print(f"{'run':<44}{'seconds':>10}")
    print(f"{'cold (fresh process, --no-cache)':<44}{cold:>10.1f}")
    print(f"{'cached re-run (fresh process)':<44}{cached:>10.1f}")
    print(f"{'sequential, batch 1 (model loaded)':<44}{timings[1]:>10.1f}")
    print(f"{f'batched, batch {args.batch_size} (model loaded)':<44}{timings[args.batch_size]:>10.1f}")
    print(f"\ncached / cold: {cached / cold:.1%} (goal <= 10%)")
    print(f"batched speed-up over sequential: {timings[1] / timings[args.batch_size]:.2f}x")
    print(f"answers that differ between batch 1 and batch {args.batch_size}: {differ} of {len(answers[1])}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
