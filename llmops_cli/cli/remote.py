"""``llmops push`` and ``llmops pull``: content-store objects to and from the remote."""

from __future__ import annotations

from typing import Literal

from llmops_cli.cli import output
from llmops_cli.cli.options import AllVersionsOpt, RemoteOpt
from llmops_cli.cli.state import STATE


def push(remote: RemoteOpt = None) -> None:
    """Upload content-store objects to the remote (a directory or fsspec URL)."""
    _transfer("push", remote, True)


def pull(remote: RemoteOpt = None, all_versions: AllVersionsOpt = False) -> None:
    """Download the store objects the checked-out artifacts (or, with --all, every version) need."""
    _transfer("pull", remote, all_versions)


def _transfer(direction: Literal["push", "pull"], remote: str | None, all_versions: bool) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from llmops_cli.versioning.transfer import transfer

    registry = STATE.registry()
    url = remote or STATE.config().storage.remote
    # A plain rich bar, not output.progress: push and pull have always drawn nothing into a piped log.
    with Progress(TextColumn(direction), BarColumn(), DownloadColumn(), disable=STATE.quiet,
                  console=output.err_console(), transient=True) as bar:  # fmt: skip
        task = bar.add_task(direction, total=None)

        def report(_phase: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = transfer(registry, direction, url, all_versions=all_versions, progress=report)
    output.success(
        f"{direction}: {len(result.copied)} object(s), {output.human_size(result.bytes)} copied; "
        f"{len(result.skipped)} already there"
    )
    if result.missing:
        shown = ", ".join(sha[:12] for sha in result.missing)
        output.warn(f"{len(result.missing)} object(s) referenced but missing locally: {shown}")
