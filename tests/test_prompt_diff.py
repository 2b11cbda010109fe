"""``prompt diff`` in temporary git repositories built from the ``project`` fixture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.errors import EXIT_BREAKING, EXIT_USAGE, EXIT_VERSIONING
from llmops_cli.prompts import prompt_diff
from llmops_cli.prompts.report import report_dict, report_markdown
from tests.helpers import HEAVY, git


def edit(path: Path, old: str, new: str, count: int = -1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def edit_yaml(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def rename_question(root: Path) -> None:
    """Rename the template variable `question` to `query` (template and declaration)."""
    prompt = root / "prompts" / "answer.yaml"
    edit(prompt, "{{ question }}", "{{ query }}")
    edit(prompt, "  question: {", "  query: {")


def breaking_kinds(data: dict[str, Any]) -> list[str]:
    return sorted(b["kind"] for p in data["prompts"] for b in p["breaking"])


# -- the main scenario in all three formats ------------------------------------------------------


def test_renamed_variable_is_breaking_in_every_format(project: Path, cli: Any) -> None:
    rename_question(project)
    commit(project, "rename question -> query")
    rng = ("--from", "HEAD~1", "--to", "HEAD")

    result = cli("prompt", "diff", *rng, "--format", "json", cwd=project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["breaking"] is True and data["version"] == 1
    assert data["to"]["rev"] == git(project, "rev-parse", "HEAD").strip()
    (answer,) = data["prompts"]
    assert answer["status"] == "modified" and answer["variables"]["renamed"] == {"question": "query"}
    assert breaking_kinds(data) == ["variable_added", "variable_removed"]
    removed = next(b for b in answer["breaking"] if b["kind"] == "variable_removed")
    assert (
        "chain 'rag-answer' step 2 (prompt-2), chain 'rag-answer-tuned' step 2 (prompt-2) still pass it"
        in removed["reason"]
    )
    assert "-Question: {{ question }}" in answer["diff"]["template"]
    assert answer["dependents"]["chains"] == ["rag-answer", "rag-answer-tuned"]
    assert answer["dependents"]["evals"] == ["quality", "quality-tuned"]

    result = cli("prompt", "diff", *rng, "--format", "markdown", cwd=project)
    assert result.exit_code == 0
    md = result.stdout
    assert md.startswith("## Prompt diff: HEAD~1")
    assert "⚠ breaking: 2 change(s)" in md.split("### `answer`")[0]  # the summary comes first
    assert "```diff\n--- a/prompts/answer.yaml (template)" in md and "+Question: {{ query }}" in md
    assert "| removed → `query`? | `question` |" in md

    result = cli("prompt", "diff", *rng, cwd=project)
    assert result.exit_code == 0
    assert "⚠ 2 breaking change(s)" in result.stdout and "+Question: {{ query }}" in result.stdout
    assert "variable 'question' was removed (renamed to 'query'?)" in result.stdout

    for fmt in ("terminal", "markdown", "json"):
        result = cli("prompt", "diff", *rng, "--format", fmt, "--fail-on-breaking", cwd=project)
        assert result.exit_code == EXIT_BREAKING, result.output
        assert "2 breaking prompt change(s) in answer" in result.stderr


def test_default_range_is_merge_base_with_main(project: Path, cli: Any) -> None:
    git(project, "checkout", "-q", "-b", "feature")
    rename_question(project)
    commit(project, "rename on a feature branch")
    git(project, "checkout", "-q", "main")  # main moves on independently: not part of the diff
    edit(project / "prompts" / "answer.yaml", "max_new_tokens: 64", "max_new_tokens: 80")
    commit(project, "main moves on")
    git(project, "checkout", "-q", "feature")

    result = cli("prompt", "diff", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["from"]["label"].startswith("main (merge-base ")
    assert data["to"] == {"rev": None, "label": "working tree"}
    assert breaking_kinds(data) == ["variable_added", "variable_removed"]
    assert data["prompts"][0]["params"] == []  # main's own later change is not in this branch's diff
    assert cli("prompt", "diff", "--fail-on-breaking", cwd=project).exit_code == EXIT_BREAKING


def test_uncommitted_changes_are_compared_by_default(project: Path) -> None:
    assert prompt_diff(project).changes == []
    rename_question(project)
    report = prompt_diff(project)
    assert [b.kind for _, b in report.breaking] == ["variable_added", "variable_removed"]


def test_param_change_only_is_not_breaking(project: Path, cli: Any) -> None:
    edit(project / "prompts" / "answer.yaml", 'params: {temperature: 0.0, max_new_tokens: 64, stop: ["\\n"]}',
         "params: {temperature: 0.7, max_new_tokens: 64, stop: END}")  # fmt: skip
    commit(project, "warmer")
    result = cli("prompt", "diff", "--from", "HEAD~1", "--to", "HEAD", "--json", "--fail-on-breaking", cwd=project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["breaking"] is False
    assert data["prompts"][0]["params"] == [
        {"name": "temperature", "from": 0.0, "to": 0.7},
        {"name": "stop", "from": ["\n"], "to": ["END"]},
    ]
    assert data["prompts"][0]["diff"] == {}
    md = cli("prompt", "diff", "--from", "HEAD~1", "--to", "HEAD", "--format", "markdown", cwd=project).stdout
    assert "No breaking changes" in md and "| `temperature` | `0.0` | `0.7` |" in md


def test_renamed_prompt_file(project: Path) -> None:
    git(project, "mv", "prompts/answer.yaml", "prompts/qa.yaml")
    edit(project / "llmops.yaml", "file: prompts/answer.yaml", "file: prompts/qa.yaml")
    commit(project, "move the prompt")
    data = report_dict(prompt_diff(project, from_rev="HEAD~1", to_rev="HEAD"))
    (answer,) = data["prompts"]
    assert answer["status"] == "renamed"
    assert answer["file"] == {"from": "prompts/answer.yaml", "to": "prompts/qa.yaml"}
    assert answer["breaking"] == [] and answer["diff"] == {} and answer["notes"] == ["file moved"]
    assert data["summary"]["renamed"] == 1


def test_deleted_prompt_still_referenced_is_breaking(project: Path) -> None:
    (project / "prompts" / "answer.yaml").unlink()
    edit_yaml(project / "llmops.yaml", lambda d: d.pop("prompts"))
    report = prompt_diff(project)
    (change,) = report.changes
    assert change.status == "deleted"
    ((name, breaking),) = report.breaking
    assert name == "answer" and breaking.kind == "prompt_deleted"
    assert "chain 'rag-answer' step 2 (prompt-2) renders it" in breaking.reason
    assert "-Question: {{ question }}" in change.text["template"]


def test_deleted_prompt_nobody_uses_is_not_breaking(project: Path) -> None:
    def drop(d: dict[str, Any]) -> None:
        for key in ("prompts", "chains", "evals"):
            d.pop(key)

    edit_yaml(project / "llmops.yaml", drop)
    report = prompt_diff(project)
    assert [c.status for c in report.changes] == ["deleted"] and report.breaking == []


def test_added_prompt_and_missing_file(project: Path) -> None:
    shutil.copy(project / "prompts" / "answer.yaml", project / "prompts" / "short.yaml")
    edit_yaml(project / "llmops.yaml", lambda d: d["prompts"].update(short={"file": "prompts/short.yaml"},
                                                                     ghost={"file": "prompts/ghost.yaml"}))  # fmt: skip
    report = prompt_diff(project)
    by_name = {c.name: c for c in report.changes}
    assert by_name["short"].status == "added" and by_name["short"].breaking == []
    assert [v.name for v in by_name["short"].variables_added] == ["question", "context"]
    assert [b.kind for b in by_name["ghost"].breaking] == ["prompt_invalid"]
    assert report.unchanged == ["answer"]
    assert report_dict(prompt_diff(project, ["short"]))["unchanged"] == []


def test_explicit_chain_vars(project: Path) -> None:
    def explicit(d: dict[str, Any]) -> None:
        for chain in ("rag-answer", "rag-answer-tuned"):
            d["chains"][chain]["steps"][1]["vars"] = {"question": "{{ question }}", "context": "{{ context }}"}

    edit_yaml(project / "llmops.yaml", explicit)
    commit(project, "explicit vars")
    prompt = project / "prompts" / "answer.yaml"
    edit(prompt, "{{ context }}", "{{ tone }}")
    edit(prompt, "  context: {type: string, required: false, default: \"\", description: Retrieved passages.}",
         "  tone: {type: string}")  # fmt: skip
    kinds = sorted(b.kind for _, b in prompt_diff(project).breaking)
    assert kinds == ["variable_added", "variable_removed"]  # the step still passes context, not tone

    def with_tone(d: dict[str, Any]) -> None:
        for chain in ("rag-answer", "rag-answer-tuned"):
            d["chains"][chain]["steps"][1]["vars"] = {"question": "{{ question }}", "tone": "friendly"}

    edit_yaml(project / "llmops.yaml", with_tone)
    assert prompt_diff(project).breaking == []  # the chain was updated in the same change


def test_type_change_and_now_required_are_breaking(project: Path) -> None:
    edit(project / "prompts" / "answer.yaml",
         'context: {type: string, required: false, default: "", description: Retrieved passages.}',
         "context: {type: list, description: Retrieved passages.}")  # fmt: skip
    report = prompt_diff(project)
    reasons = {b.kind: b.reason for _, b in report.breaking}
    # Now required, but the chain's retrieve step already provides `context`: only the type breaks.
    assert set(reasons) == {"variable_type"}
    assert "changed type string -> list" in reasons["variable_type"]
    (vc,) = report.changes[0].variables_changed
    assert vc.changes["required"] == (False, True) and vc.changes["default"] == ("", None)

    direct = {"target": {"prompt": "answer"}, "dataset": "eval", "metrics": ["rougeL"]}
    edit_yaml(project / "llmops.yaml", lambda d: d["evals"].update(direct=direct))
    reasons = {b.kind: b.reason for _, b in prompt_diff(project).breaking}
    assert set(reasons) == {"variable_type", "variable_required"}
    assert "eval(s) direct call the prompt directly" in reasons["variable_required"]


def test_undeclared_template_variable_is_breaking(project: Path) -> None:
    edit(project / "prompts" / "answer.yaml", "Question: {{ question }}", "Question: {{ question }} ({{ lang }})")
    ((_, breaking),) = prompt_diff(project).breaking
    assert breaking.kind == "undeclared_variable" and "'lang'" in breaking.reason


def test_examples_rows_matched_by_content(project: Path) -> None:
    rows = [{"question": f"q{i}", "output": f"a{i}"} for i in range(3)]
    (project / "prompts" / "answer.examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    edit(project / "prompts" / "answer.yaml", "params:", "examples: prompts/answer.examples.jsonl\nparams:")
    commit(project, "few-shot")
    git(project, "mv", "prompts/answer.examples.jsonl", "prompts/qa.jsonl")
    edit(project / "prompts" / "answer.yaml", "prompts/answer.examples.jsonl", "prompts/qa.jsonl")
    new_rows = [rows[2], {"question": "q0", "output": "A0!"}, {"question": "new", "output": "n"}]
    (project / "prompts" / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new_rows))
    (change,) = prompt_diff(project).changes
    ex = change.examples
    assert ex is not None and (ex.file_from, ex.file_to) == ("prompts/answer.examples.jsonl", "prompts/qa.jsonl")
    assert ex.unchanged == 1
    assert ex.modified == [(rows[0], {"question": "q0", "output": "A0!"})]
    assert ex.removed == [rows[1]] and ex.added == [{"question": "new", "output": "n"}]
    assert change.breaking == []
    md = report_markdown(prompt_diff(project))
    assert "1 added, 1 removed, 1 modified, 1 unchanged" in md


def test_only_examples_changed_counts_as_a_change(project: Path) -> None:
    (project / "prompts" / "ex.jsonl").write_text('{"question": "q", "output": "a"}\n')
    edit(project / "prompts" / "answer.yaml", "examples: prompts/answer.examples.jsonl", "examples: prompts/ex.jsonl")
    commit(project, "few-shot")
    assert prompt_diff(project, from_rev="HEAD").changes == []
    (project / "prompts" / "ex.jsonl").write_text('{"question": "q", "output": "b"}\n')
    (change,) = prompt_diff(project, from_rev="HEAD").changes
    assert change.examples is not None and len(change.examples.modified) == 1


def test_project_in_a_subdirectory(tmp_path: Path) -> None:
    from llmops_cli.scaffold import init_project

    repo = tmp_path / "mono"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README").write_text("monorepo\n")
    commit(repo, "root")
    project = repo / "services" / "bot"
    init_project(project, name="bot", commit=False)
    commit(repo, "add the bot")
    rename_question(project)
    commit(repo, "rename")
    report = prompt_diff(project, from_rev="HEAD~1", to_rev="HEAD")
    assert [c.name for c in report.changes] == ["answer"] and len(report.breaking) == 2
    report = prompt_diff(project, from_rev="HEAD~2", to_rev="HEAD")  # before the project existed
    assert [c.status for c in report.changes] == ["added"]


def test_errors(project: Path, cli: Any) -> None:
    result = cli("prompt", "diff", "--from", "no-such-rev", cwd=project)
    assert result.exit_code == EXIT_USAGE and "unknown git revision 'no-such-rev'" in result.stderr
    result = cli("prompt", "diff", "nope", cwd=project)
    assert result.exit_code == EXIT_USAGE and "unknown prompt 'nope'" in result.stderr
    git(project, "branch", "-m", "main", "trunk")
    result = cli("prompt", "diff", cwd=project)
    assert result.exit_code == EXIT_USAGE and "cannot find the default branch" in result.stderr
    assert "--from" in result.stderr


def test_shallow_clone_explains_how_to_fetch(project: Path, tmp_path: Path, cli: Any) -> None:
    git(project, "checkout", "-q", "-b", "feature")
    rename_question(project)
    commit(project, "rename")
    git(project, "checkout", "-q", "main")
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", project.as_uri(), str(clone))
    result = cli("prompt", "diff", cwd=clone)
    assert result.exit_code == EXIT_VERSIONING, result.output
    assert "shallow clone" in result.stderr and "fetch-depth: 0" in result.stderr
    assert "git fetch --unshallow" in result.stderr
    result = cli("prompt", "diff", "--from", "HEAD~1", cwd=clone)
    assert result.exit_code == EXIT_VERSIONING and "fetch-depth: 0" in result.stderr


PROBE = """
import json, sys
import typer
from llmops_cli.cli import app as app_module
from llmops_cli.cli import prompt
app = app_module.app
if not any(g.name == "prompt" for g in app.registered_groups):
    app = typer.Typer()
    app.callback()(app_module.main)
    app.add_typer(prompt.app, name="prompt")
try:
    app(json.loads(sys.argv[1]), prog_name="llmops")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
sys.exit(code or 0)
"""


@pytest.mark.parametrize("fmt", ["terminal", "markdown", "json"])
def test_prompt_diff_imports_nothing_heavy(project: Path, fmt: str) -> None:
    rename_question(project)
    args = ["prompt", "diff", "--from", "HEAD", "--format", fmt]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (list(HEAVY),), json.dumps(args)],
        cwd=project, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "query" in proc.stdout
    line = [x for x in proc.stderr.splitlines() if x.startswith("HEAVY=")][-1]
    assert json.loads(line[6:]) == [], f"prompt diff imported {line}"
