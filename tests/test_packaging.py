"""The built wheel carries the templates and schemas (installed into a fresh virtualenv)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, venv_with_wheel


@pytest.mark.slow
def test_wheel_in_fresh_venv_has_templates_and_schema(tmp_path: Path, built_wheel: Path) -> None:
    wheel = built_wheel
    assert wheel.name.startswith("llmops_cli-")
    python = venv_with_wheel(tmp_path / "venv", wheel)
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
