"""Project paths stay inside the project: nothing outside it is read (or committed) by accident.

A path from ``llmops.yaml`` or a prompt file is resolved the way the OS will open it (symlinks
followed) and must land inside the project root, unless its entry says ``allow_outside: true``.
Files found by walking a dataset folder obey the same bound: the project root, or, for a folder
that is itself outside (and so was allowed), that folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmops_cli.errors import UsageError

ALLOW_KEY = "allow_outside"


def real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def is_inside(path: Path, bound: Path) -> bool:
    """Whether ``path`` (links followed) is ``bound`` or under it (``bound`` is resolved too)."""
    target, base = real(path), real(bound)
    return target == base or base in target.parents


def outside_message(value: str, target: Path, root: Path, *, entry: str) -> str:
    """The one message for a path that leaves the project; says how to allow it."""
    via = " through a symlink" if not Path(value).is_absolute() and ".." not in Path(value).parts else ""
    return (
        f"'{value}' resolves{via} to {real(target)}, outside the project ({real(root)}); llmops reads only "
        f"files inside the project unless the entry allows it: add '{ALLOW_KEY}: true' to {entry}"
    )


def walk_bound(folder: Path, root: Path) -> Path:
    """What files under ``folder`` must stay in: the project, or ``folder`` itself when it lies outside."""
    return real(root) if is_inside(folder, root) else real(folder)


def check_walked(files: list[Path], folder: Path, root: Path | None, *, what: str) -> list[Path]:
    """``files`` (found under ``folder``), refusing any that a symlink takes out of bounds."""
    if root is None or not folder.is_dir():
        return files
    bound = walk_bound(folder, root)
    for file in files:
        if not is_inside(file, bound):
            shown = os.path.relpath(file, root) if is_inside(file.parent, root) else str(file)
            raise UsageError(
                f"{what}: {shown} is a symlink to {real(file)}, outside "
                f"{'the project' if bound == real(root) else bound}; it was not read",
                hint="Copy the file into the project, or point the dataset at its real location "
                f"with '{ALLOW_KEY}: true'.",
            )
    return files
