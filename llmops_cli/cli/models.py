"""``llmops models``: the models a project declares and whether each is available here."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.base import LlmopsTyper
from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.state import STATE

app = LlmopsTyper(help="List and prepare the project's models.")


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """Show each declared model, where it comes from, whether it is available and which engine runs it."""
    from llmops_cli.models import list_models

    config = STATE.config()
    resolved = list_models(config)
    engines = {m.name: _engine(config, m.name) for m in resolved}
    if json_out:
        output.print_json(
            [
                {
                    "name": m.name,
                    "kind": m.kind,
                    "source": m.source,
                    "available": m.available,
                    "path": str(m.path) if m.path else None,
                    "detail": m.detail,
                    "engine": engines[m.name][0],
                    "engine_reason": engines[m.name][1],
                }
                for m in resolved
            ]  # fmt: skip
        )
        return
    yes_no = {True: "[green]yes[/green]", False: "[red]no[/red]"}
    rows = [
        [m.name, m.kind, m.source or f"{m.model} @ {m.base_url}", yes_no[m.available], engines[m.name][0], m.detail]
        for m in resolved
    ]
    output.table(None, ["model", "kind", "source", "available", "engine", "detail"], rows)


def _engine(config: Any, name: str) -> tuple[str, str]:
    """(engine, why) for a model on the CPU without an adapter: what chains and serve will use."""
    from llmops_cli.errors import LlmopsError
    from llmops_cli.providers.runtime import choose_runtime

    spec = config.models[name]
    if spec.is_remote:
        return "http", "remote model"
    try:
        choice = choose_runtime(spec, config.root)
    except LlmopsError as error:
        return "-", error.message
    return choice.engine, choice.reason


@app.command()
def prepare(
    name: Annotated[str | None, typer.Argument(help="Model to prepare (default: every local model).")] = None,
) -> None:
    """Make local models ready to load: dequantize GGUF files once and cache them as safetensors."""
    from llmops_cli.errors import UsageError
    from llmops_cli.models import materialize

    cfg = STATE.config()
    if name is not None and name not in cfg.models:
        raise UsageError(f"unknown model '{name}'; declared: {', '.join(cfg.models) or 'none'}")
    specs = [cfg.models[name]] if name else [m for m in cfg.models.values() if not m.is_remote]
    for spec in specs:
        with output.err_console().status(f"preparing {spec.name} ({spec.source})"):
            path = materialize(spec, cfg.root)
        output.success(f"{spec.name}: ready at {path}")
