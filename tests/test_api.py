"""The Python API (``from llmops_cli import Project``): the README example runs, and scores as ``llmops eval``.

The project's model is the scripted OpenAI-compatible server of tests/fixtures/evals.py, answering
three of the six eval questions right, so the scores are neither 0 nor 1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.errors import EvalErrors, QualityGateFailed
from tests.fixtures.evals import FakeLLM
from tests.helpers import REPO_ROOT, git


def readme_example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"<!-- api-example:[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its Python API example"
    return match.group(1)


def setup_project(project: Path, fake: FakeLLM, threshold: str = ">= 0.2") -> None:
    fake.answers = dict(list(fake.answers.items())[:3])  # right on 3 questions, "I don't know." on the rest
    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["fake"] = {"provider": "openai", "base_url": fake.url, "model": "fake-1"}
    data["chains"]["rag-answer"] = {
        "inputs": ["question"],
        "steps": [{"prompt": "answer", "model": "fake", "output": "answer"}],
    }
    data["evals"] = {
        "quality": {
            "target": {"prompt": "answer", "model": "fake"},
            "dataset": "eval",
            "metrics": ["rougeL", "exact_match", "latency_ms"],
            "thresholds": {"rougeL": threshold},
        }
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "api test setup")


def test_readme_example_runs_and_scores_as_llmops_eval(
    project: Path,
    fake_llm: FakeLLM,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_project(project, fake_llm)
    monkeypatch.chdir(project)
    namespace: dict[str, Any] = {}
    exec(compile(readme_example(), "README.md (Python API example)", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    result = namespace["result"]
    assert 0.2 < result.aggregates["rougeL"]["mean"] < 0.9 and result.passed
    assert namespace["answer"].result == "llmops validate"  # the chain asked the model
    assert namespace["latest"].tag == "eval/quality/v1"
    assert "eval/quality/v1" in printed and str(round(result.aggregates["rougeL"]["mean"], 3))[:4] in printed
    assert namespace["report"].changes == [] and "answer" in namespace["report"].unchanged  # HEAD is the work tree

    requests = len(fake_llm.requests)
    cli_run = cli("eval", "quality", "--no-cache", "--no-save", "--json", cwd=project)
    assert cli_run.exit_code == 0, cli_run.output
    assert len(fake_llm.requests) > requests  # generated again, not replayed from the API's cache
    suite = json.loads(cli_run.stdout)["suites"][0]
    for metric in ("rougeL", "exact_match"):
        for stat in ("mean", "n", "stderr"):
            assert suite["aggregates"][metric][stat] == pytest.approx(result.aggregates[metric][stat]), (metric, stat)
    assert [c["case_id"] for c in suite["cases"]] == [c.case_id for c in result.cases]
    assert [c["scores"]["rougeL"] for c in suite["cases"]] == pytest.approx([c.scores["rougeL"] for c in result.cases])


def test_eval_gates_raise_only_when_checked(project: Path, fake_llm: FakeLLM) -> None:
    from llmops_cli import Project

    setup_project(project, fake_llm, threshold=">= 0.9")
    p = Project(project / "prompts")  # any folder inside the project finds its llmops.yaml
    assert p.root == project.resolve()
    result = p.eval("quality", save=False)
    assert not result.passed and [t.key for t in result.failed_thresholds()] == ["rougeL.mean"]
    with pytest.raises(QualityGateFailed, match="1 quality gate"):
        p.eval("quality", save=False, check=True)
    fake_llm.mode = "reject"
    errored = p.eval("quality", save=False, use_cache=False)
    assert errored.error_count == len(errored.cases)
    with pytest.raises(EvalErrors, match="6 eval cases errored"):
        p.eval("quality", save=False, use_cache=False, check=True)
    seen: list[tuple[str, int, int]] = []
    fake_llm.mode = "oracle"
    run = p.eval_run(["quality"], save=False, progress=lambda label, done, total: seen.append((label, done, total)))
    assert run.results[0].suite == "quality" and seen and seen[-1][1] == seen[-1][2] == 6


def test_log_show_add_and_chain_errors(project: Path) -> None:
    from llmops_cli import Project
    from llmops_cli.errors import UsageError

    p = Project(project)
    (project / "notes.md").write_text("# notes\n")
    added = p.add("notes.md", kind="report")
    assert added.version.tag == "report/notes/v1" and not added.reused
    assert p.add("notes.md", kind="report").reused
    assert [v.tag for v in p.log()] == ["report/notes/v1"]
    assert p.show("report/notes").manifest["files"][0]["path"] == "notes.md"
    with pytest.raises(UsageError, match="unknown chain 'nope'"):
        p.chain("nope")
    assert p.validate().ok and repr(p) == f"Project({str(project.resolve())!r})"


def test_importing_the_package_does_not_load_the_api() -> None:
    code = (
        "import sys, llmops_cli\n"
        "assert 'llmops_cli.project' not in sys.modules\n"
        "from llmops_cli import Project\n"
        "heavy = [m for m in ('torch', 'transformers', 'chromadb', 'typer', 'rich') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(Project.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "llmops_cli.project"
