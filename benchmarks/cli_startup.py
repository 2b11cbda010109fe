"""Start-up time of `llmops --help` and `llmops validate` against `python -c pass`.

Runs each command several times in fresh processes and prints medians and the ratio to a bare
interpreter start. The goal from the foundation issue: `llmops --help` median <= 0.25 s.

    python benchmarks/cli_startup.py [--runs 15] [--project sample-project]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def llmops_command() -> list[str]:
    exe = Path(sys.executable).with_name("llmops")
    return [str(exe)] if exe.exists() else [shutil.which("llmops") or "llmops"]


def median_time(cmd: list[str], runs: int, cwd: Path) -> tuple[float, float]:
    times = []
    env = {**os.environ, "NO_COLOR": "1"}
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--project", type=Path, default=ROOT / "sample-project")
    args = parser.parse_args()
    llmops = llmops_command()
    cases = [
        ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
        ("llmops --help", [*llmops, "--help"]),
        ("llmops validate (sample-project)", [*llmops, "validate"]),
    ]
    median_time(cases[1][1], 2, args.project)  # warm the filesystem cache and .pyc files
    results = {name: median_time(cmd, args.runs, args.project) for name, cmd in cases}
    base = results[cases[0][0]][0]
    print(f"{'command':36} {'median s':>9} {'min s':>7} {'x baseline':>11}  ({args.runs} runs each)")
    for name, (med, low) in results.items():
        print(f"{name:36} {med:9.3f} {low:7.3f} {med / base:11.1f}")
    help_median = results["llmops --help"][0]
    verdict = "ok" if help_median <= 0.25 else "OVER BUDGET"
    print(f"\nllmops --help median {help_median:.3f} s (goal <= 0.250 s): {verdict}")


if __name__ == "__main__":
    main()
