"""``llmops retrieve``: the indexed chunks closest to a query."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import AllowModelCodeOpt, JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE

_TEXT_WIDTH = 240  # characters of each chunk shown by `retrieve`


def retrieve(
    name: Annotated[str, typer.Argument(help="Retriever to query.")],
    query: Annotated[str, typer.Argument(help="Text to search for.")],
    top_k: Annotated[
        int | None, typer.Option("--top-k", "-k", min=1, help="How many chunks (default: the retriever's top_k).")
    ] = None,
    allow_code: AllowModelCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Show the indexed chunks closest to a query, best first, with their cosine similarity."""
    from llmops_cli.retrieval import retrieve as run_query

    consent_to_code(allow_code)
    hits = run_query(STATE.config(), name, query, top_k=top_k)
    if json_out:
        output.print_json([{"rank": i, **hit.as_dict()} for i, hit in enumerate(hits, start=1)])
        return
    from rich.markup import escape

    rows = [[i, f"{hit.score:.3f}", escape(hit.location), escape(_trim(hit.text))] for i, hit in enumerate(hits, 1)]
    output.table(None, ["rank", "score", "source", "text"], rows)


def _trim(text: str, width: int = _TEXT_WIDTH) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"
