"""``llmops add``: version any file or folder as an artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.state import STATE


def add(
    path: Annotated[Path, typer.Argument(help="The file or folder to version (copied into artifacts/KIND/NAME/).")],
    kind: Annotated[
        str, typer.Option("--kind", "-k", help="Artifact kind, e.g. model, report, file, dataset.", metavar="KIND")
    ] = "file",
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Artifact name (default: the file or folder name).")
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="Lineage: what it was made from, KIND/NAME[@vN] or a path (repeatable)."),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Commit message summary.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Version any file or folder as KIND/NAME/vN (store, pointers, tag, lineage), like dvc add.

    An unchanged re-run registers nothing: it reuses the latest version, decided before any copy
    (files already hashed and untouched since are not read again).
    """
    from llmops_cli.versioning.add import add_path

    artifact_name = name or (path.resolve().stem if path.is_file() else path.resolve().name)
    result = add_path(STATE.registry(), path, kind, artifact_name, inputs=inputs, message=message)
    if json_out:
        output.print_json(result.as_dict())
        return
    size = output.human_size(result.bytes)
    if result.reused:
        output.success(f"unchanged: {result.version.key} v{result.version.version} already has these {result.files} "
                       f"file(s) ({size}); nothing registered")  # fmt: skip
    else:
        output.success(f"registered {result.version.tag}: {result.files} file(s), {size}, "
                       f"{result.stored} in the content store ({result.version.commit[:10]})")  # fmt: skip
