"""What ``llmops push`` and ``llmops pull`` move, and the move itself, reported as one progress phase."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from llmops_cli.progress import ProgressFn
    from llmops_cli.versioning.artifacts import ArtifactRegistry
    from llmops_cli.versioning.remote import TransferResult

Direction = Literal["push", "pull"]


def objects_to_transfer(registry: ArtifactRegistry, direction: Direction, *, all_versions: bool) -> dict[str, int]:
    """sha -> size: what versions reference (checked out, or ``all_versions``); a push also sends
    everything the local store holds."""
    objects = registry.referenced_objects(all_versions=all_versions)
    if direction == "push":
        local = registry.store
        objects |= {sha: local.object_path(sha).stat().st_size for sha in local.iter_objects()}
    return objects


def transfer(
    registry: ArtifactRegistry,
    direction: Direction,
    url: str | None,
    *,
    all_versions: bool,
    progress: ProgressFn | None = None,
) -> TransferResult:
    """Push or pull the objects :func:`objects_to_transfer` lists; ``progress(direction, bytes done,
    bytes in all)`` after each object."""
    from llmops_cli.versioning import remote

    objects = objects_to_transfer(registry, direction, all_versions=all_versions)
    total = sum(objects.values())
    done = 0
    if progress:
        progress(direction, 0, total)

    def moved(_sha: str, size: int) -> None:
        nonlocal done
        done += size
        if progress:
            progress(direction, done, total)

    fn = remote.push if direction == "push" else remote.pull
    return fn(registry.store, url, objects, moved)
