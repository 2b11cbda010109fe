"""Plain helpers shared by the test modules (no fixtures: those live in ``tests/fixtures/``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PROJECT = REPO_ROOT / "sample-project"

# What start-up must never import (tests/test_imports.py checks every everyday command).
HEAVY = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "chromadb", "safetensors", "gguf")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout
