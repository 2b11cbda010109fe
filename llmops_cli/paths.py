"""Where things live: the project root, llmops' own directory inside it, and LLMOPS_HOME."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from llmops_cli.errors import UsageError

CONFIG_NAME = "llmops.yaml"
STATE_DIR = ".llmops"  # gitignored: content store, caches, indexes, monitor store


def llmops_home() -> Path:
    """User-level cache (dequantized models, ...): ``$LLMOPS_HOME`` or ``~/.cache/llmops``."""
    env = os.environ.get("LLMOPS_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llmops"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory upwards from ``start`` (default: cwd) holding ``llmops.yaml``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise UsageError(
        f"No {CONFIG_NAME} found in {here} or any parent directory.",
        hint="Run 'llmops init' to create a project, or pass --project DIR.",
    )


def project_root_from_option(project: Path | None) -> Path:
    """Resolve the global ``--project`` option: a directory, or a path to an llmops.yaml."""
    if project is None:
        return find_project_root()
    project = project.expanduser().resolve()
    if project.is_file():
        return project.parent
    if not (project / CONFIG_NAME).is_file():
        raise UsageError(
            f"--project {project}: no {CONFIG_NAME} there.",
            hint="Point --project at a directory containing llmops.yaml, or run 'llmops init' there.",
        )
    return project


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive cross-process lock on ``lock_path``: a second holder waits instead of interleaving."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock; callers still write atomically
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
