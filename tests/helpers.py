"""Plain helpers shared by the test modules (no fixtures: those live in ``tests/fixtures/``)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PROJECT = REPO_ROOT / "sample-project"

# What start-up must never import (tests/test_imports.py checks every everyday command).
HEAVY = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "chromadb", "safetensors", "gguf")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def venv_with_wheel(env_dir: Path, wheel: Path) -> Path:
    """A new venv (no pip) with ``wheel`` installed without its dependencies; returns its python."""
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    return python
