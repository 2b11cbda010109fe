"""Test isolation (no test sees the real HOME, git config, caches or the network) and the shared fixtures.

Fixtures used by more than one test module live in ``tests/fixtures/`` (one module per topic, listed in
its ``__init__``) and are registered here; plain helpers are in ``tests/helpers.py``. Test modules
never import from one another.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

# Registered as plugins (not imported) so pytest rewrites their asserts too; tuning and quantize hold
# only helpers, which test modules import from them.
pytest_plugins = [
    "tests.fixtures.cli",
    "tests.fixtures.models",
    "tests.fixtures.serve",
    "tests.fixtures.packages",
    "tests.fixtures.deploy",
    "tests.fixtures.evals",
    "tests.fixtures.postgres",
    "tests.fixtures.tuning",
    "tests.fixtures.quantize",
]


@pytest.fixture(scope="session")
def llmops_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One LLMOPS_HOME per test session, so the embedded model is dequantized at most once."""
    preset = os.environ.get("LLMOPS_TEST_HOME")
    return Path(preset) if preset else tmp_path_factory.mktemp("llmops-home")


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, llmops_home: Path) -> None:
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LLMOPS_HOME", str(llmops_home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
                "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "LLMOPS_PROJECT", "LLMOPS_DEBUG",
                "LLMOPS_ALLOW_CODE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    from llmops_cli.models import trust

    monkeypatch.setitem(trust._consent, "allowed", False)  # one test's --allow-code must not carry over
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository built as a wheel (once per test process), for the install tests."""
    import sys

    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO_ROOT)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("*.whl")
    return wheel


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project made by ``llmops init`` (a git repo with one commit)."""
    from llmops_cli.scaffold import init_project

    root = tmp_path / "proj"
    init_project(root, name="proj")
    return root
