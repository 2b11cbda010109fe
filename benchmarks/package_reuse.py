"""An unchanged `llmops package NAME` re-run against a build, on a copy of a built project.

Copies PROJECT (with its history, content store and built artifacts: e.g. a sample project after
`make demo`) into a temporary folder, then alternates: a build forced by a one-line comment added
to (or removed from) a shipped prompt file, and unchanged re-runs, each as a fresh `llmops`
process as a user would run it. Prints medians, the ratio (goal from issue 15: a re-run <= 10% of
a build) and the load average.

    python benchmarks/package_reuse.py PROJECT [--package support-bot] [--touch prompts/answer.yaml] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def llmops() -> str:
    exe = Path(sys.executable).with_name("llmops")
    return str(exe) if exe.exists() else (shutil.which("llmops") or "llmops")


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return took, proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--package", default="support-bot")
    parser.add_argument("--touch", default="prompts/answer.yaml", help="A file the package ships (a build changes it).")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # An installed wheel has its .pyc compiled at install time; without them every llmops
        # process compiles ~90 modules again (~0.15 s), which is not what users run.
        print("note: PYTHONDONTWRITEBYTECODE is set: llmops' modules are compiled in every process")
    builds: list[float] = []
    reruns: list[float] = []
    with tempfile.TemporaryDirectory(prefix="package-reuse-") as tmp:
        root = Path(tmp) / "project"
        shutil.copytree(args.project, root, symlinks=True)
        cmd = [llmops(), "package", "build", args.package]
        timed(cmd, root)  # whatever state the copy is in: built and registered now (caches warm)
        touched = root / args.touch
        original = touched.read_text()
        for i in range(args.runs):
            touched.write_text(original + "# benchmark\n" if i % 2 == 0 else original)
            took, out = timed(cmd, root)
            if "registered" not in out:
                sys.exit(f"the forced build did not register a version: {out[-400:]}")
            builds.append(took)
            for _ in range(2):
                took, out = timed(cmd, root)
                if "already has exactly this content" not in out:
                    sys.exit(f"an unchanged re-run did not reuse: {out[-400:]}")
                reruns.append(took)
    build, rerun = statistics.median(builds), statistics.median(reruns)
    print(f"package {args.package}: build (median of {len(builds)}) {build:.2f} s  [{_list(builds)}]")
    print(f"unchanged re-run (median of {len(reruns)}) {rerun:.2f} s  [{_list(reruns)}]")
    print(f"ratio {rerun / build:.1%} (goal <= 10%)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
