"""``llmops init``: copy the project template, then make the first commit (our files only)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.errors import UsageError, VersioningError
from llmops_cli.paths import atomic_write_bytes
from llmops_cli.resources import templates_dir

PLACEHOLDER = "__PROJECT_NAME__"
DOT_PREFIX = "dot-"  # templates keep dotfiles as dot-NAME so packaging tools never drop them


@dataclass
class InitResult:
    root: Path
    name: str
    files: list[str]
    commit: str | None
    created_repo: bool


def project_name_for(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", directory.resolve().name.lower()).strip("-._")
    return name or "llmops-project"


def template_files(template: str = "project") -> dict[str, Path]:
    """``destination relative path -> template file``."""
    base = templates_dir() / template
    if not base.is_dir():
        raise UsageError(f"unknown template '{template}'")
    files = {}
    for path in sorted(base.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = "/".join(
                "." + part[len(DOT_PREFIX) :] if part.startswith(DOT_PREFIX) else part
                for part in path.relative_to(base).parts
            )
            files[rel] = path
    return files


def init_project(directory: Path, *, name: str | None = None, force: bool = False, commit: bool = True) -> InitResult:
    directory = directory.expanduser().resolve()
    name = name or project_name_for(directory)
    if not re.match(r"^[a-z0-9][a-z0-9._-]*$", name):
        raise UsageError(
            f"invalid project name '{name}'",
            hint="Use lowercase letters, digits, '.', '_' and '-' (e.g. --name support-bot).",
        )
    files = template_files()
    existing = [rel for rel in files if (directory / rel).exists()]
    if existing and not force:
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise UsageError(
            f"{directory} already has {len(existing)} file(s) llmops init would write: {shown}",
            hint="Nothing was changed. Pass --force to overwrite them, or choose an empty directory.",
        )
    directory.mkdir(parents=True, exist_ok=True)
    for rel, source in files.items():
        data = source.read_bytes().replace(PLACEHOLDER.encode(), name.encode())
        atomic_write_bytes(directory / rel, data)

    created_repo = False
    sha = None
    if commit:
        created_repo = _ensure_repo(directory)
        from llmops_cli.versioning.gitrepo import GitRepo

        repo = GitRepo(directory)
        paths = [repo.relpath(directory / rel) for rel in files]
        sha = repo.commit_paths(paths, f"llmops init: scaffold project '{name}'\n")
    return InitResult(directory, name, sorted(files), sha, created_repo)


def _ensure_repo(directory: Path) -> bool:
    """``git init`` unless ``directory`` is already inside a work tree. True if it made one."""
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=directory, capture_output=True, text=True
    )
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        return False
    made = subprocess.run(["git", "init", "-q", "-b", "main"], cwd=directory, capture_output=True, text=True)
    if made.returncode != 0:
        raise VersioningError(f"git init failed in {directory}: {made.stderr.strip()}")
    return True
