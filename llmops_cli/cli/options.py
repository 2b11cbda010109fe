"""Reusable option and argument types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing files.")]
RemoteOpt = Annotated[
    str | None,
    typer.Option("--remote", "-r", help="Directory or fsspec URL (default: storage.remote in llmops.yaml)."),
]
AllVersionsOpt = Annotated[bool, typer.Option("--all", help="Every registered version, not only the checked-out ones.")]
RefArg = Annotated[str, typer.Argument(help="KIND/NAME[@vN], e.g. adapter/faq-lora@v2 (default: latest).")]
AllowModelCodeOpt = Annotated[
    bool,
    typer.Option("--allow-code", help="Let the model's trust_remote_code run (Python code shipped with the model)."),
]

VarOpt = Annotated[
    list[str] | None, typer.Option("--var", help="A variable as KEY=VALUE (repeatable).", metavar="KEY=VALUE")
]
VarsFileOpt = Annotated[
    Path | None, typer.Option("--vars", help="A JSON file with an object of variables.", exists=True, dir_okay=False)
]


def parse_vars(pairs: list[str] | None, vars_file: Path | None = None) -> dict[str, Any]:
    """``--vars file.json`` first, then each ``--var KEY=VALUE`` on top of it."""
    from llmops_cli.errors import UsageError

    values: dict[str, Any] = {}
    if vars_file is not None:
        try:
            loaded = json.loads(vars_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--vars {vars_file}: not a readable JSON file ({exc})") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--vars {vars_file}: expected a JSON object of variables")
        values.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var {pair!r}: expected KEY=VALUE")
        values[key.strip()] = value
    return values


def consent_to_code(allow_code: bool) -> None:
    """``--allow-code`` also lets models with ``trust_remote_code: true`` load (see llmops_cli.models.trust)."""
    if allow_code:
        from llmops_cli.models.trust import allow_project_code

        allow_project_code()
