"""The llmops GitHub Action's work: run llmops, write the job summary, keep one sticky PR comment.

Standard library only, so it runs on any runner's ``python3`` whatever the job installed.

``run`` (what ``action.yml`` calls) reads its inputs from ``LLMOPS_*`` environment variables,
runs the requested commands in order (``validate``, ``index``, ``prompt-diff``, ``eval``), each to the end
even after an earlier one failed, so the comment shows everything. It writes one Markdown report
to ``$GITHUB_STEP_SUMMARY`` and to the output folder, posts or updates the pull request's sticky
comment, and exits with the first non-zero llmops exit code (README: "Exit codes"), or 0 when
``LLMOPS_FAIL`` is ``false``.

``upsert`` posts or updates one comment from a Markdown file. The comment is found by a hidden
HTML marker (``<!-- llmops-action:KEY -->``) among the pull request's comments, so reruns and new
pushes edit the same comment instead of adding one each time. It talks to GitHub only through the
GitHub CLI (``gh api``, authenticated by ``GH_TOKEN``), which is what the tests replace.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

MARKER = "<!-- llmops-action:{key} -->"
MAX_BODY = 60_000  # GitHub refuses comments over 65,536 characters
COMMANDS = ("validate", "index", "prompt-diff", "eval")
EXIT_MEANINGS = {
    0: "passed",
    1: "internal error (a bug)",
    2: "usage error or invalid project configuration",
    3: "an optional dependency is missing",
    4: "git / versioning / artifact-store error",
    5: "a quality gate failed",
    6: "a breaking prompt change",
    7: "a model or artifact is not available locally",
    8: "eval cases errored",
    130: "interrupted",
}


class ActionError(Exception):
    """A problem with the action's inputs or with GitHub; the message says what to fix."""


# -- the sticky comment -------------------------------------------------------------------------


def _gh(args: list[str], *, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(["gh", *args], input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ActionError("the GitHub CLI 'gh' is not on PATH (GitHub-hosted runners have it)") from None
    if done.returncode != 0:
        raise ActionError(f"gh {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return done.stdout


def _json_values(text: str) -> list[object]:
    """Every JSON value in ``text``: ``gh api --paginate`` prints one array per page, back to back."""
    decoder = json.JSONDecoder()
    values, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)


def find_comment(repo: str, pr: int, marker: str) -> int | None:
    """The id of the pull request's comment carrying ``marker`` (the first one), or None."""
    pages = _json_values(_gh(["api", "--paginate", f"repos/{repo}/issues/{pr}/comments?per_page=100"]))
    for page in pages:
        for comment in page if isinstance(page, list) else [page]:
            if isinstance(comment, dict) and marker in str(comment.get("body") or ""):
                return int(comment["id"])
    return None


def upsert_comment(repo: str, pr: int, body: str, *, key: str = "llmops") -> tuple[str, int]:
    """Create or update the sticky comment; returns ("created" | "updated", comment id)."""
    marker = MARKER.format(key=key)
    if len(body) > MAX_BODY:
        body = body[:MAX_BODY] + "\n\n… (truncated: the full report is in the job summary and artifacts)\n"
    payload = json.dumps({"body": f"{marker}\n{body}"})
    existing = find_comment(repo, pr, marker)
    if existing is None:
        created = _gh(["api", "-X", "POST", f"repos/{repo}/issues/{pr}/comments", "--input", "-"], stdin=payload)
        made = json.loads(created)
        return "created", int(made["id"])
    _gh(["api", "-X", "PATCH", f"repos/{repo}/issues/comments/{existing}", "--input", "-"], stdin=payload)
    return "updated", existing


def pull_request_number() -> int | None:
    """The pull request this job runs for, from the event payload (None on a push)."""
    if os.environ.get("LLMOPS_PR"):
        return int(os.environ["LLMOPS_PR"])
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path or not Path(path).is_file():
        return None
    event = json.loads(Path(path).read_text(encoding="utf-8"))
    number = (event.get("pull_request") or {}).get("number")
    return int(number) if number else None


# -- running llmops -----------------------------------------------------------------------------


def _flag(name: str, default: str = "false") -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no", ""}:
        raise ActionError(f"{name}={value!r}: expected true or false")
    return value in {"true", "1", "yes"}


def _words(name: str) -> list[str]:
    return os.environ.get(name, "").replace(",", " ").split()


def _llmops() -> list[str]:
    base = shlex.split(os.environ.get("LLMOPS_BIN", "llmops"))
    project = os.environ.get("LLMOPS_PROJECT", "").strip()
    return [*base, "-C", project] if project and project != "." else base


def _run(args: list[str], *, stdout_file: Path | None = None, with_stderr: bool = False) -> tuple[int, str]:
    """Run llmops; stdout is kept (and echoed) for the report. stderr streams into the job log
    (progress of a long eval), or with ``with_stderr`` is kept too (validate's errors go there)."""
    print(f"::group::llmops {shlex.join(args)}", flush=True)
    stderr = subprocess.STDOUT if with_stderr else None
    done = subprocess.run([*_llmops(), *args], stdout=subprocess.PIPE, stderr=stderr, text=True, check=False)
    sys.stdout.write(done.stdout)
    print("::endgroup::", flush=True)
    if stdout_file is not None:
        stdout_file.write_text(done.stdout, encoding="utf-8")
    return done.returncode, done.stdout


def _diff_from() -> str | None:
    explicit = os.environ.get("LLMOPS_DIFF_FROM", "").strip()
    if explicit:
        return explicit
    base = os.environ.get("GITHUB_BASE_REF", "").strip()
    return f"origin/{base}" if base else None


def _status(code: int) -> str:
    icon = "✅" if code == 0 else "❌"
    return f"{icon} {EXIT_MEANINGS.get(code, 'failed')}" + ("" if code == 0 else f" (exit {code})")


def run_commands(commands: list[str], out_dir: Path) -> tuple[int, list[tuple[str, int, str]]]:
    """(exit code of the first failure or 0, [(command, exit code, Markdown section)])."""
    suites = _words("LLMOPS_SUITE")
    limit = os.environ.get("LLMOPS_LIMIT", "").strip()
    sections: list[tuple[str, int, str]] = []
    for command in commands:
        if command == "validate":
            code, text = _run(["validate"], with_stderr=True)
            sections.append((command, code, f"```\n{text.strip() or '(no output)'}\n```\n" if code else ""))
        elif command == "index":  # every retriever, so chains that retrieve can run in prompt-diff and eval
            code, text = _run(["index"], with_stderr=True)
            sections.append((command, code, f"```\n{text.strip() or '(no output)'}\n```\n" if code else ""))
        elif command == "prompt-diff":
            base = _diff_from()
            if base is None:
                print("prompt-diff: skipped (not a pull request and no diff-from)", flush=True)
                continue
            args = ["prompt", "diff", "--from", base, "--format", "markdown"]
            if _flag("LLMOPS_FAIL_ON_BREAKING", "true"):
                args.append("--fail-on-breaking")
            if _flag("LLMOPS_DIFF_EVAL", "true"):
                args += [a for suite in suites for a in ("--eval", suite)]
            if limit and suites:
                args += ["--limit", limit]
            code, text = _run(args, stdout_file=out_dir / "prompt-diff.md")
            sections.append((command, code, text))
        elif command == "eval":
            eval_dir = out_dir / "eval"
            args = ["eval", *suites, "--output", str(eval_dir)]
            if not _flag("LLMOPS_SAVE"):
                args.append("--no-save")
            if os.environ.get("LLMOPS_BASELINE", "").strip():
                args += ["--baseline", os.environ["LLMOPS_BASELINE"].strip()]
            if os.environ.get("LLMOPS_FAIL_ON_REGRESSION", "").strip():
                args += ["--fail-on-regression", os.environ["LLMOPS_FAIL_ON_REGRESSION"].strip()]
            if _flag("LLMOPS_ALLOW_ERRORS"):
                args.append("--allow-errors")
            if limit:
                args += ["--limit", limit]
            code, text = _run(args)
            summary = eval_dir / "summary.md"
            body = summary.read_text(encoding="utf-8") if summary.is_file() else f"```\n{text.strip()}\n```\n"
            sections.append((command, code, body))
        else:
            raise ActionError(f"unknown command {command!r}; expected some of: {', '.join(COMMANDS)}")
    first_failure = next((code for _, code, _ in sections if code != 0), 0)
    return first_failure, sections


def report_markdown(sections: list[tuple[str, int, str]]) -> str:
    lines = ["## llmops", "", "| step | result |", "|---|---|"]
    lines += [f"| `{command}` | {_status(code)} |" for command, code, _ in sections]
    for command, _, body in sections:
        if body.strip():
            lines += ["", f"<details open><summary><b>{command}</b></summary>", "", body.strip(), "", "</details>"]
    server, repo, run_id = (os.environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run_id:
        lines += ["", f"<sub>[job log and reports]({server}/{repo}/actions/runs/{run_id}) · updated by llmops</sub>"]
    return "\n".join(lines) + "\n"


def _comment_wanted(pr: int | None) -> bool:
    mode = os.environ.get("LLMOPS_COMMENT", "auto").strip().lower()
    if mode == "auto":
        return pr is not None
    return _flag("LLMOPS_COMMENT")


def action_main() -> int:
    commands = _words("LLMOPS_COMMAND") or ["validate", "prompt-diff", "eval"]
    unknown = [c for c in commands if c not in COMMANDS]
    if unknown:
        raise ActionError(f"command: unknown {', '.join(unknown)}; expected some of: {', '.join(COMMANDS)}")
    out_dir = Path(os.environ.get("LLMOPS_OUTPUT") or "llmops-reports")
    out_dir.mkdir(parents=True, exist_ok=True)
    code, sections = run_commands(commands, out_dir)
    markdown = report_markdown(sections)
    (out_dir / "comment.md").write_text(markdown, encoding="utf-8")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(markdown)
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as outputs:
            outputs.write(f"exit-code={code}\nreport={out_dir / 'comment.md'}\n")
    pr = pull_request_number()
    if _comment_wanted(pr):
        repo = os.environ.get("GITHUB_REPOSITORY", "")
        if pr is None or not repo:
            print("::warning::comment: no pull request to comment on (set pr-number)", flush=True)
        else:
            try:
                key = os.environ.get("LLMOPS_COMMENT_KEY") or "llmops"
                how, comment_id = upsert_comment(repo, pr, markdown, key=key)
                print(f"comment {how}: {comment_id}", flush=True)
            except ActionError as exc:
                # A fork's pull request gets a read-only token: report, but let the gate decide the job.
                print(f"::warning::could not post the pull-request comment: {exc}", flush=True)
    if code:
        print(f"::error::llmops: {EXIT_MEANINGS.get(code, 'failed')} (exit {code})", flush=True)
    return code if _flag("LLMOPS_FAIL", "true") else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("run", help="run the action (inputs from LLMOPS_* environment variables)")
    upsert = sub.add_parser("upsert", help="create or update the sticky comment from a Markdown file")
    upsert.add_argument("--repo", default=os.environ.get("GITHUB_REPOSITORY"), help="OWNER/NAME")
    upsert.add_argument("--pr", type=int, default=None, help="pull request number (default: from the event)")
    upsert.add_argument("--key", default="llmops", help="which sticky comment (one per key)")
    upsert.add_argument("body", type=Path, help="Markdown file")
    args = parser.parse_args(argv)
    try:
        if args.what == "run":
            return action_main()
        pr = args.pr or pull_request_number()
        if pr is None or not args.repo:
            raise ActionError("upsert needs --repo and --pr (or GITHUB_REPOSITORY and a pull_request event)")
        how, comment_id = upsert_comment(args.repo, pr, args.body.read_text(encoding="utf-8"), key=args.key)
        print(f"{how} comment {comment_id}")
        return 0
    except ActionError as exc:
        print(f"::error::{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
