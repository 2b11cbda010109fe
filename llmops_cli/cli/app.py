"""The ``llmops`` command: global options and the command groups.

Every module imported here is light (typer plus llmops' own light modules); each command imports
what it needs when it runs, so ``llmops --help`` never loads torch, transformers or chromadb.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_cli import __version__
from llmops_cli.cli import (
    add,
    chain,
    checkout,
    data,
    deploy,
    evaluate,
    index,
    log,
    models,
    monitor,
    package,
    project,
    prompt,
    quantize,
    remote,
    retrieve,
    serve,
    show,
    tune,
)
from llmops_cli.cli.base import LlmopsTyper
from llmops_cli.cli.coercion import install as install_fast_coercion
from llmops_cli.cli.state import STATE
from llmops_cli.errors import EXIT_CODES

install_fast_coercion()  # no pydantic import on every command (typer coerces through it)

_EPILOG = "Exit codes: " + "; ".join(f"{code} {text.split(' (')[0]}" for code, text in EXIT_CODES.items())

app = LlmopsTyper(
    name="llmops",
    help="From prompt to production: prompts, chains, LoRA tuning, evals, quantization, packaging, "
    "deployment and monitoring, driven by llmops.yaml and versioned in git.",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"llmops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project",
            "-C",
            help="Project directory (default: nearest llmops.yaml upwards).",
            envvar="LLMOPS_PROJECT",
            show_envvar=False,
        ),
    ] = None,  # fmt: skip
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More output; tracebacks on errors.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    STATE.project = project_dir
    STATE.verbose = verbose
    STATE.quiet = quiet
    _notes(quiet)


def _notes(quiet: bool) -> None:
    """The core's notices (the ``llmops`` logger: e.g. which engine a model fell back to) go to stderr."""
    import logging

    logger = logging.getLogger("llmops")
    if not any(getattr(h, "_llmops", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("note: %(message)s"))
        handler._llmops = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.ERROR if quiet else logging.WARNING)


app.command()(project.init)
app.command()(project.validate)
app.command()(project.schema)
app.command()(add.add)
app.command()(log.log)
app.command()(show.show)
app.command()(checkout.checkout)
app.command()(remote.push)
app.command()(remote.pull)
app.add_typer(models.app, name="models")
app.command()(index.index)
app.command()(retrieve.retrieve)
app.add_typer(prompt.app, name="prompt")
app.add_typer(chain.app, name="chain")
app.add_typer(data.app, name="data")
app.add_typer(tune.app, name="tune")
app.command("eval")(evaluate.eval_command)
app.command()(quantize.quantize)
app.add_typer(package.app, name="package")
app.command()(serve.serve)
app.add_typer(deploy.app, name="deploy")
app.command("monitor")(monitor.monitor_command)


def for_argv(argv: list[str]) -> typer.Typer:
    """``app`` with only the command ``argv`` names, when it names one.

    typer turns every command of an app into click objects (signatures, help, parameter types)
    before it runs one: about 90 ms for llmops' ~90 commands, on every run. A run that names its
    command needs only that one (in a group, only the subcommand it names or the group's default
    takes); anything else (``--help`` or no command, a word that is not a command, shell
    completion) gets the whole app or group, so help, errors and suggestions are the same.
    """
    found = _command_word(argv)
    if found is None or any(key.startswith("_") and key.endswith("_COMPLETE") for key in os.environ):
        return app
    name, rest = found
    commands = [c for c in app.registered_commands if _name(c) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if len(commands) + len(groups) != 1:
        return app
    pruned = copy.copy(app)
    pruned.registered_commands = commands
    pruned.registered_groups = [_only_subcommand(g, rest) for g in groups]
    return pruned


def _name(command: Any) -> str:
    from typer.main import get_command_name

    return str(command.name or get_command_name(command.callback.__name__))


def _only_subcommand(group: Any, rest: list[str]) -> Any:
    """``group`` with only the subcommand ``rest`` runs (the one it names, or the default its
    class inserts before a word that names none); the whole group when unsure."""
    sub = group.typer_instance
    first = rest[0] if rest else None
    if first is None or first.startswith("-") or sub is None or sub.registered_groups:
        return group  # the group's own help or usage error lists every subcommand
    named = {_name(c): c for c in sub.registered_commands}
    keep = named.get(first) or named.get(getattr(sub.info.cls, "default_command", None) or "")
    if keep is None:
        return group  # "No such command": click suggests among all of them
    only = copy.copy(sub)
    only.registered_commands = [keep]
    pruned = copy.copy(group)
    pruned.typer_instance = only
    return pruned


_VALUE_OPTIONS = ("-C", "--project")  # the global options that take a value (a test keeps this true)


def _command_word(argv: list[str]) -> tuple[str, list[str]] | None:
    """The command word after the global options and the words after it, or None (help asked
    first, no command)."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            return (argv[index], argv[index + 1 :]) if index < len(argv) else None
        if arg in ("-h", "--help"):
            return None
        if arg in _VALUE_OPTIONS:
            index += 1
            continue
        if arg.startswith("--"):
            continue  # a flag, or --project=DIR
        if arg.startswith("-") and len(arg) > 1:
            flags = arg[1:]
            if "h" in flags.split("C")[0]:
                return None
            if flags.endswith("C"):
                index += 1  # -vC DIR; -vCDIR carries its value
            continue
        return arg, argv[index:]
    return None
