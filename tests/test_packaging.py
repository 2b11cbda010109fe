"""The built wheel carries the templates and schemas (installed into a fresh virtualenv)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT


@pytest.mark.slow
def test_wheel_in_fresh_venv_has_templates_and_schema(tmp_path: Path, built_wheel: Path) -> None:
    wheel = built_wheel
    assert wheel.name.startswith("llmops_cli-")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import json, llmops_cli.resources as r, llmops_cli.scaffold as s;"
        "print(json.dumps({'templates': str(r.templates_dir()), 'schema': r.load_schema()['$id'],"
        "'prompt': r.load_schema('prompt')['$id'], 'files': sorted(s.template_files())}))"
    )
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import json

    info = json.loads(out.stdout)
    assert "site-packages" in info["templates"] and str(REPO_ROOT) not in info["templates"]
    assert info["schema"].endswith("llmops.schema.json") and info["prompt"].endswith("prompt.schema.json")
    assert {"llmops.yaml", ".gitignore", ".github/workflows/llmops.yml", ".pre-commit-config.yaml"} <= set(
        info["files"]
    )
