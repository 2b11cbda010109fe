"""``llmops push`` and ``llmops pull``: content-store objects to and from the remote."""

from __future__ import annotations

from llmops_cli.cli import output
from llmops_cli.cli.options import AllVersionsOpt, RemoteOpt
from llmops_cli.cli.state import STATE


def push(remote: RemoteOpt = None) -> None:
    """Upload content-store objects to the remote (a directory or fsspec URL)."""
    _transfer("push", remote, True)


def pull(remote: RemoteOpt = None, all_versions: AllVersionsOpt = False) -> None:
    """Download the store objects the checked-out artifacts (or, with --all, every version) need."""
    _transfer("pull", remote, all_versions)


def _transfer(direction: str, remote: str | None, all_versions: bool) -> None:
    from llmops_cli.versioning import remote as remote_mod

    registry = STATE.registry()
    url = remote or STATE.config().storage.remote
    objects = registry.referenced_objects(all_versions=all_versions)
    if direction == "push":  # everything the local store holds, plus what versions reference
        local = registry.store
        objects |= {sha: local.object_path(sha).stat().st_size for sha in local.iter_objects()}
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    total = sum(objects.values())
    with Progress(TextColumn(direction), BarColumn(), DownloadColumn(), disable=STATE.quiet,
                  console=output.err_console(), transient=True) as bar:  # fmt: skip
        task = bar.add_task(direction, total=total)
        fn = remote_mod.push if direction == "push" else remote_mod.pull
        result = fn(registry.store, url, objects, lambda _sha, size: bar.advance(task, size))
    output.success(
        f"{direction}: {len(result.copied)} object(s), {output.human_size(result.bytes)} copied; "
        f"{len(result.skipped)} already there"
    )
    if result.missing:
        shown = ", ".join(sha[:12] for sha in result.missing)
        output.warn(f"{len(result.missing)} object(s) referenced but missing locally: {shown}")
