"""The ``llmops`` command: global options and the command groups.

Every module imported here is light (typer plus llmops' own light modules); each command imports
what it needs when it runs, so ``llmops --help`` never loads torch, transformers or chromadb.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
