"""``llmops init``, ``llmops validate``, ``llmops schema``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import ForceOpt, JsonOpt
from llmops_cli.cli.state import STATE


def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project (default: here).")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Project name (default: the directory's name).")] = None,
    force: ForceOpt = False,
    no_commit: Annotated[bool, typer.Option("--no-commit", help="Write the files but make no commit.")] = False,
) -> None:
    """Create a working project: llmops.yaml, a prompt, small datasets, an eval suite, CI and
    pre-commit configs; then `git init` (if needed) and commit exactly those files."""
    from llmops_cli.scaffold import init_project

    result = init_project(directory, name=name, force=force, commit=not no_commit)
    output.success(f"created project '{result.name}' in {result.root} ({output.plural(len(result.files), 'file')})")
    if result.commit:
        made = "new git repository, " if result.created_repo else ""
        output.info(f"  {made}commit {result.commit[:10]}")
    output.info(f"  next: cd {result.root} && llmops validate && llmops models list")


def validate(json_out: JsonOpt = False) -> None:
    """Check llmops.yaml and the files it references; report every problem with file:line:col."""
    from llmops_cli.config.loader import config_error
    from llmops_cli.validation import validate_project

    root = STATE.project_root()
    result = validate_project(root)
    if json_out:
        output.print_json({"ok": result.ok, "problems": [p.as_dict() for p in result.problems]})
        if not result.ok:
            raise typer.Exit(config_error(result.problems).exit_code)
        return
    if not result.ok:
        raise config_error(result.problems)
    cfg = result.config
    assert cfg is not None
    counts = {
        "model": len(cfg.models),
        "prompt": len(cfg.prompts),
        "dataset": len(cfg.datasets),
        "chain": len(cfg.chains),
        "adapter": len(cfg.adapters),
        "eval suite": len(cfg.evals),
    }
    summary = ", ".join(output.plural(n, k) for k, n in counts.items() if n)
    output.success(f"{cfg.path.name} is valid: project '{cfg.name}' ({summary or 'empty'})")


def schema(
    prompt: Annotated[bool, typer.Option("--prompt", help="Print the prompt-file schema instead.")] = False,
) -> None:
    """Print the JSON Schema of llmops.yaml (for editors and other tools)."""
    from llmops_cli.resources import load_schema

    output.print_json(load_schema("prompt" if prompt else "llmops"))
