"""Rendering for ``llmops data``: validate summaries, dataset statistics (lengths, histograms,
duplicates, overlap) and snapshot results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops_cli.cli import output

if TYPE_CHECKING:
    from llmops_cli.data import DatasetCheck, DatasetStats, Distribution, Duplicates, Snapshot

_BAR = 40  # characters of the longest histogram bar


def validate_summary(check: DatasetCheck) -> None:
    role = ", training data" if check.training else ""
    output.success(f"{check.name}: {len(check.rows)} valid rows ({check.format}{role}, {check.path})")
    for key, where in check.empty.items():
        shown = ", ".join(where[:5]) + (" …" if len(where) > 5 else "")
        output.warn(f"{check.name}: {len(where)} rows have an empty {key} (snapshot drops them): {shown}")


def snapshot_dict(snap: Snapshot) -> dict[str, Any]:
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


def print_snapshot(snap: Snapshot) -> None:
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


def print_stats(st: DatasetStats) -> None:
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
