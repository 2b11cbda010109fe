"""``llmops data``: validate datasets, explore them (EDA) and version clean train/eval snapshots."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops_cli.cli import output, render_data
from llmops_cli.cli.base import LlmopsTyper
from llmops_cli.cli.options import AllowModelCodeOpt, JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE

app = LlmopsTyper(help="Datasets: validate rows, explore them (lengths, duplicates, leakage) and snapshot them.")

NameArg = Annotated[str, typer.Argument(help="Dataset name (under `datasets:` in llmops.yaml).")]


@app.command()
def validate(
    name: Annotated[
        str | None, typer.Argument(help="Dataset to check (default: every dataset except documents).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check every row of a dataset against its format; report each bad row as file:line: field: message."""
    from llmops_cli.data import check_dataset
    from llmops_cli.data.loading import invalid_dataset_error
    from llmops_cli.errors import ConfigError

    cfg = STATE.config()
    names = [name] if name else [n for n, d in cfg.datasets.items() if d.format != "documents"]
    checks = [check_dataset(cfg, n) for n in names]
    bad = [c for c in checks if not c.ok]
    if json_out:
        output.print_json([c.as_dict() for c in checks] if name is None else checks[0].as_dict())
        if bad:
            raise typer.Exit(ConfigError("").exit_code)
        return
    for check in checks:
        if check.ok:
            render_data.validate_summary(check)
    if len(bad) == 1:
        raise invalid_dataset_error(bad[0])
    if bad:
        problems = [p for c in bad for p in c.problems]
        raise ConfigError(
            f"{len(bad)} datasets are invalid ({', '.join(c.name for c in bad)}): {len(problems)} problems",
            problems=problems,
            hint="Fix the rows above, then run 'llmops data validate' again.",
        )


@app.command()
def stats(
    name: NameArg,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Model whose tokenizer counts tokens (default: the training adapter's base)."
        ),
    ] = None,
    max_seq_len: Annotated[
        int | None,
        typer.Option(
            "--max-seq-len", min=1, help="Token limit to check rows against (default: the adapter's, or 512)."
        ),
    ] = None,
    against: Annotated[
        list[str] | None,
        typer.Option(
            "--against",
            metavar="NAME",
            help="Dataset to check for overlap (repeatable; default: other chat/qa datasets).",
        ),
    ] = None,
    no_tokens: Annotated[bool, typer.Option("--no-tokens", help="Skip token lengths (no tokenizer load).")] = False,
    allow_code: AllowModelCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Rows, token and character lengths, empty fields, exact and near duplicates, and train/eval overlap."""
    from llmops_cli.data import dataset_stats

    consent_to_code(allow_code)
    cfg = STATE.config()
    with output.progress(name, enabled=not (json_out or STATE.quiet), style="phases", width=32) as report:
        result = dataset_stats(
            cfg, name, model=model, max_seq_len=max_seq_len, against=against, tokens=not no_tokens, progress=report
        )
    if json_out:
        output.print_json(result.as_dict())
        return
    render_data.print_stats(result)


@app.command()
def snapshot(
    name: NameArg,
    eval_split: Annotated[
        float | None,
        typer.Option(
            "--eval-split", min=0.0, max=0.5, help="Fraction held out for eval (default: the adapter's, or 0.1)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Split seed (default: the adapter's, or 42).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Clean, deduplicate and split a dataset, and version it as dataset/NAME/vN (reused when unchanged)."""
    from llmops_cli.data import snapshot_dataset

    snap = snapshot_dataset(STATE.config(), name, eval_split=eval_split, seed=seed)
    if json_out:
        output.print_json(render_data.snapshot_dict(snap))
        return
    render_data.print_snapshot(snap)
