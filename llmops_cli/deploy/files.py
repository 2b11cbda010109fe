"""Writing rendered output into a folder llmops owns, without ever clobbering someone else's files.

The folder gets a ``.llmops-rendered`` file (JSON) listing what llmops wrote. A re-render deletes exactly
those files before writing the new set, so a file left over from another runtime (which
``kubectl apply -f DIR`` would still apply) cannot survive; a folder that holds files llmops did
not write is refused rather than mixed into.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_cli.errors import UsageError
from llmops_cli.paths import atomic_write_text

if TYPE_CHECKING:
    from llmops_cli.deploy.k8s import Manifest

MARKER = ".llmops-rendered"  # no .json/.yaml suffix: kubectl apply -f DIR must not read it


def render_text(item: Manifest, header: str) -> str:
    """A manifest's file content: comment lines, then YAML (or its plain text)."""
    import yaml

    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"# {line}" if line else "#" for line in item.comment.splitlines()]
    head = "\n".join(lines) + "\n" if lines else ""
    if item.text is not None:
        return item.text
    body = yaml.safe_dump(item.obj, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)
    return head + body


def owned_files(folder: Path) -> list[str]:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(p) for p in data.get("files", []) if isinstance(p, str)]


def write_output(folder: Path, items: list[Manifest], *, header: str, keep: tuple[str, ...] = ()) -> list[Path]:
    """Replace llmops' files in ``folder`` by ``items``; returns the written paths.

    ``keep`` names top-level entries the caller manages itself (the docker build context).
    """
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder.", hint="Choose another --output.")
    marker = folder / MARKER
    if folder.is_dir() and not marker.is_file():
        foreign = [p.name for p in folder.iterdir() if p.name not in keep]
        if foreign:
            raise UsageError(
                f"{folder} already holds files llmops did not write ({', '.join(sorted(foreign)[:5])}).",
                hint="Render into a new folder with --output, or empty that one.",
            )
    emptied: set[Path] = set()
    for rel in owned_files(folder):
        target = (folder / rel).resolve()
        if target.is_relative_to(folder) and target.is_file():
            target.unlink()
            emptied.update(p for p in target.parents if p.is_relative_to(folder) and p != folder)
    for directory in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    written = []
    for item in items:
        path = folder / item.path
        atomic_write_text(path, render_text(item, header))
        written.append(path)
    atomic_write_text(marker, json.dumps({"files": [i.path for i in items]}, indent=2) + "\n")
    return written
