"""``llmops index``: embed retrievers' documents into their vector stores and version the indexes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import AllowModelCodeOpt, JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE

if TYPE_CHECKING:
    from llmops_cli.retrieval import IndexStats


def index(
    name: Annotated[str | None, typer.Argument(help="Retriever to index (default: every retriever).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-embed every document, even unchanged ones.")] = False,
    allow_code: AllowModelCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Embed a retriever's documents into its vector store (only new and changed ones) and version the index."""
    from llmops_cli.errors import UsageError
    from llmops_cli.retrieval import build_index

    consent_to_code(allow_code)
    cfg = STATE.config()
    names = [name] if name else list(cfg.retrievers)
    if not names:
        raise UsageError("llmops.yaml declares no retrievers.", hint="Add one under 'retrievers:' ('llmops schema').")
    results = []
    for retriever in names:
        with output.progress(
            retriever,
            enabled=not (json_out or STATE.quiet),
            style="phases",
            width=28,
            interleaved=True,
            relabel=("load",),
        ) as report:
            results.append(build_index(cfg, retriever, progress=report, full=full))
    if json_out:
        output.print_json([stats.as_dict() for stats in results])
        return
    _summary_table(results)
    for stats in results:
        if stats.version:
            how = f"rebuilt: {stats.rebuilt}" if stats.rebuilt else "incremental"
            output.success(f"{stats.retriever}: registered {stats.version} ({how})")
        else:
            current = f" ({stats.current_version})" if stats.current_version else ""
            output.success(f"{stats.retriever}: up to date{current}")


def _summary_table(results: list[IndexStats]) -> None:
    rows = [
        [s.retriever, s.documents, s.added, s.updated, s.removed, s.unchanged, s.chunks_total, s.chunks_embedded,
         f"{s.seconds:.2f}", f"{s.chunks_per_s:.1f}" if s.chunks_embedded else "-", s.current_version or "-"]
        for s in results
    ]  # fmt: skip
    columns = ["retriever", "documents", "added", "updated", "removed", "unchanged", "chunks", "embedded",
               "seconds", "chunks/s", "version"]  # fmt: skip
    output.table(None, columns, rows)
