"""Reusable option and argument types."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing files.")]
RemoteOpt = Annotated[
    str | None,
    typer.Option("--remote", "-r", help="Directory or fsspec URL (default: storage.remote in llmops.yaml)."),
]
AllVersionsOpt = Annotated[bool, typer.Option("--all", help="Every registered version, not only the checked-out ones.")]
