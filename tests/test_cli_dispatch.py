"""``llmops`` builds only the command it runs (llmops_cli.cli.app.for_argv), and behaves the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from llmops_cli.cli.app import _VALUE_OPTIONS, app, for_argv


def _names(typer_app: typer.Typer) -> set[str]:
    group = typer.main.get_command(typer_app)
    return set(group.commands)  # type: ignore[attr-defined]


def test_the_global_options_that_take_a_value_are_the_ones_the_word_finder_skips() -> None:
    group = typer.main.get_command(app)
    taking = {
        decl
        for param in group.params
        if not getattr(param, "is_flag", False) and not getattr(param, "count", False)
        for decl in param.opts
    }
    assert taking == set(_VALUE_OPTIONS)


@pytest.mark.parametrize(
    ("argv", "only"),
    [
        (["package", "build", "x"], "package"),
        (["-C", "dir", "package", "x"], "package"),
        (["--project", "dir", "-v", "eval", "suite"], "eval"),
        (["--project=dir", "-q", "validate"], "validate"),
        (["-vC", "dir", "log"], "log"),
        (["-Cdir", "log"], "log"),
        (["-vv", "--", "serve"], "serve"),
        (["prompt", "--help"], "prompt"),
    ],
)
def test_a_named_command_is_built_alone(argv: list[str], only: str) -> None:
    assert _names(for_argv(argv)) == {only}
    assert len(_names(app)) > 15  # the app itself is untouched


@pytest.mark.parametrize(
    ("argv", "subcommands"),
    [
        (["package", "build", "x"], {"build"}),
        (["package", "support-bot"], {"build"}),  # the group's default takes it
        (["-q", "package", "verify", "f.tar.gz"], {"verify"}),
        (["package", "--help"], {"build", "verify", "inspect", "unpack", "prepare"}),
        (["package"], {"build", "verify", "inspect", "unpack", "prepare"}),
        (["prompt", "nope"], {"list", "show", "render", "lint", "diff"}),  # no default: click suggests
        (["deploy", "--help"], None),
    ],
)
def test_in_a_group_only_the_subcommand_that_runs_is_built(argv: list[str], subcommands: set[str] | None) -> None:
    name = next(a for a in argv if not a.startswith("-"))
    group = typer.main.get_command(for_argv(argv)).commands[name]  # type: ignore[attr-defined]
    whole = set(typer.main.get_command(app).commands[name].commands)  # type: ignore[attr-defined]
    assert set(group.commands) == (subcommands if subcommands is not None else whole)


@pytest.mark.parametrize(
    "argv", [[], ["--help"], ["-h", "package"], ["-vh"], ["-C", "dir"], ["no-such-command"], ["--version"]]
)
def test_help_no_command_or_an_unknown_word_gets_the_whole_app(argv: list[str]) -> None:
    assert for_argv(argv) is app


def test_completion_gets_the_whole_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_LLMOPS_COMPLETE", "complete_bash")
    assert for_argv(["package"]) is app


@pytest.mark.parametrize(
    "argv",
    [
        ["package", "build", "--help"],
        ["package", "build", "x", "--compress-level", "0"],
        ["-C", "{dir}", "validate"],
        ["packag"],
        ["--help"],
        ["prompt", "nope"],
        ["-C", "{dir}", "package", "no-such-package"],
        ["-C", "{dir}", "package", "verify", "missing.tar.gz"],
        ["deploy", "--help"],
        ["tune", "-h"],
    ],
)
def test_the_console_script_answers_as_the_whole_app_does(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "llmops.yaml").write_text("name: p\nversion: 1\n")
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    whole = (
        "import sys\nfrom llmops_cli.cli.app import app\n"
        "sys.argv[0] = 'llmops'\napp(sys.argv[1:], prog_name='llmops')\n"
    )
    pruned = [sys.executable, "-m", "llmops_cli", *argv]
    a = subprocess.run([sys.executable, "-c", whole, *argv], capture_output=True, text=True, cwd=tmp_path)
    b = subprocess.run(pruned, capture_output=True, text=True, cwd=tmp_path)
    assert (b.returncode, b.stdout, b.stderr) == (a.returncode, a.stdout, a.stderr)
