"""``llmops data``: validate datasets, explore them (EDA) and version clean train/eval snapshots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.base import LlmopsTyper
from llmops_cli.cli.options import AllowModelCodeOpt, JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE

if TYPE_CHECKING:
    from llmops_cli.data import DatasetCheck, DatasetStats, Distribution, Duplicates, Snapshot

app = LlmopsTyper(help="Datasets: validate rows, explore them (lengths, duplicates, leakage) and snapshot them.")

NameArg = Annotated[str, typer.Argument(help="Dataset name (under `datasets:` in llmops.yaml).")]
_BAR = 40  # characters of the longest histogram bar


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
            _validate_summary(check)
    if len(bad) == 1:
        raise invalid_dataset_error(bad[0])
    if bad:
        problems = [p for c in bad for p in c.problems]
        raise ConfigError(
            f"{len(bad)} datasets are invalid ({', '.join(c.name for c in bad)}): {len(problems)} problems",
            problems=problems,
            hint="Fix the rows above, then run 'llmops data validate' again.",
        )


def _validate_summary(check: DatasetCheck) -> None:
    role = ", training data" if check.training else ""
    output.success(f"{check.name}: {len(check.rows)} valid rows ({check.format}{role}, {check.path})")
    for key, where in check.empty.items():
        shown = ", ".join(where[:5]) + (" …" if len(where) > 5 else "")
        output.warn(f"{check.name}: {len(where)} rows have an empty {key} (snapshot drops them): {shown}")


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
    _print_stats(result)


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
    from llmops_cli.data.tokens import training_adapter

    cfg = STATE.config()
    adapter = training_adapter(cfg, name)
    training = cfg.adapters[adapter].training if adapter else None
    split = eval_split if eval_split is not None else float(training.eval_split if training else 0.1)
    chosen_seed = seed if seed is not None else int(training.seed if training else 42)
    snap = snapshot_dataset(cfg, name, eval_split=split, seed=chosen_seed)
    if json_out:
        output.print_json(_snapshot_dict(snap))
        return
    _print_snapshot(snap)


# --- rendering ------------------------------------------------------------------------------------


def _snapshot_dict(snap: Snapshot) -> dict[str, Any]:
    return {
        "ref": snap.ref,
        "version": snap.version,
        "created": snap.created,
        "content_hash": snap.content_hash,
        "path": str(snap.path),
        "train": len(snap.train),
        "eval": len(snap.eval),
        "stats": snap.stats,
    }


def _print_snapshot(snap: Snapshot) -> None:
    s = snap.stats
    rows = [
        ["rows read", s["rows_in"]],
        ["dropped (empty field)", s["dropped_empty"]["count"]],
        ["exact duplicates removed", s["exact_duplicates_removed"]["count"]],
        ["near duplicates removed", s["near_duplicates_removed"]["count"]],
        ["rows kept", s["rows_out"]],
        ["train", len(snap.train)],
        ["eval", len(snap.eval)],
    ]
    output.table(None, ["", "rows"], rows)
    output.console().print(f"content hash  {snap.content_hash}")
    output.console().print(f"files         {snap.path}")
    if snap.created:
        output.success(f"registered {snap.ref}")
    else:
        output.success(f"unchanged: reused {snap.ref} (same content and settings)")
    if not snap.eval and s["params"]["eval_split"] > 0:
        output.warn("the eval split is empty: the dataset is too small for this --eval-split")


def _print_stats(st: DatasetStats) -> None:
    con = output.console()
    invalid = (
        f", {st.invalid_rows} invalid rows skipped (see 'llmops data validate {st.name}')" if st.invalid_rows else ""
    )
    con.print(f"[bold]{st.name}[/bold]: {st.rows} rows ({st.format}, {st.path}){invalid}")
    _lengths_table(st)
    if st.tokens is not None:
        over = f"[red]{st.over_max_seq_len}[/red]" if st.over_max_seq_len else "0"
        where = f": {', '.join(st.over_examples)}" + (" …" if st.over_max_seq_len > len(st.over_examples) else "")
        con.print(f"rows over max_seq_len {st.max_seq_len}: {over}{where if st.over_max_seq_len else ''}")
        _histogram(st.tokens, "tokens", st.max_seq_len)
    else:
        con.print(f"[dim]token lengths: {st.tokens_note}[/dim]")
        if st.chars is not None:
            _histogram(st.chars, "characters", None)
    if st.empty:
        output.table("empty fields", ["field", "rows"], [[k, v] for k, v in st.empty.items()])
    _duplicates("exact duplicates", st.exact_duplicates)
    _duplicates("near duplicates (case, punctuation, spacing)", st.near_duplicates)
    _overlaps(st)


def _lengths_table(st: DatasetStats) -> None:
    rows = []
    for label, dist in ((f"tokens ({st.model})", st.tokens), ("characters", st.chars)):
        if dist is not None:
            rows.append([label, dist.min, _n(dist.p50), _n(dist.p90), _n(dist.p95), _n(dist.p99), dist.max, dist.mean])
    if rows:
        output.table("lengths", ["", "min", "p50", "p90", "p95", "p99", "max", "mean"], rows)


def _n(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _histogram(dist: Distribution, unit: str, limit: int | None) -> None:
    from rich.markup import escape

    top = max(n for _, _, n in dist.histogram) or 1
    con = output.console()
    con.print(f"[dim]{unit} per row[/dim]")
    for low, high, count in dist.histogram:
        bar = "█" * round(count / top * _BAR) if count else ""
        mark = " [red]> max_seq_len[/red]" if limit is not None and high > limit else ""
        con.print(f"  {low:>7}-{high:<7} {escape(bar):<{_BAR}} {count}{mark}")


def _duplicates(title: str, found: Duplicates) -> None:
    from rich.markup import escape

    con = output.console()
    if not found.rows:
        con.print(f"{title}: none")
        return
    con.print(f"{title}: [yellow]{found.rows}[/yellow] rows repeat {found.groups} others")
    for pair in found.examples:
        con.print(f"  {pair.where} repeats {pair.other}: {escape(pair.text)}")


def _overlaps(st: DatasetStats) -> None:
    from rich.markup import escape

    if not st.overlaps:
        output.console().print("[dim]overlap: no other chat/instruction/qa dataset to compare with[/dim]")
        return
    rows: list[list[Any]] = []
    for o in st.overlaps:
        if o.error:
            rows.append([o.against, "-", "-", "-", f"not compared: {escape(o.error)}"])
            continue
        examples = "\n".join(f"{p.where} ~ {p.other}: {escape(p.text)}" for p in o.examples)
        rows.append([o.against, o.rows, o.same_prompt, o.same_row, examples])
    output.table("overlap (leakage)", ["against", "its rows", "same prompt", "same row", "examples"], rows)
