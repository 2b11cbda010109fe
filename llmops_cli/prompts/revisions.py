"""The two sides of a ``prompt diff``: the project's prompts at a git revision or in the work tree.

A side is a :class:`Snapshot`: ``llmops.yaml`` as it was (which prompts exist, which file each
lives in, and the chains, evals and packages around them) and each prompt parsed from its file as
it was. Revisions are read with ``git show REV:path``, nothing is checked out. The project may
live in a subdirectory of the repository; paths are mapped through the project's prefix.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import ConfigError, UsageError, VersioningError
from llmops_cli.paths import CONFIG_NAME
from llmops_cli.prompts.spec import PromptSpec, TextReader, disk_reader, parse_prompt_text

if TYPE_CHECKING:
    from llmops_cli.versioning.gitrepo import GitRepo

WORK_TREE = "working tree"
_SHALLOW_HINT = (
    "This is a shallow clone, so the history to compare with is missing. In CI, check out with "
    "full history (GitHub Actions: actions/checkout with `fetch-depth: 0`); locally run "
    "'git fetch --unshallow'. Or pass --from REV explicitly."
)


@dataclass
class PromptEntry:
    """A prompt as one side declares it; ``spec`` is None when its file is missing or invalid."""

    name: str
    file: str | None
    text: str | None = None
    spec: PromptSpec | None = None
    error: str | None = None


@dataclass
class Snapshot:
    rev: str | None  # full commit sha; None for the work tree
    label: str
    config: dict[str, Any]
    read_text: TextReader = field(repr=False)
    prompts: dict[str, PromptEntry] = field(default_factory=dict)
    has_config: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"rev": self.rev, "label": self.label}


def _parse_config(text: str | None, where: str) -> dict[str, Any]:
    from llmops_cli.config.envvars import expand
    from llmops_cli.config.yamlpos import YamlLoadError, loads_located

    if text is None:
        return {}
    try:
        data = loads_located(text, file=where).data
    except YamlLoadError as exc:
        raise ConfigError(
            f"{where} is not valid YAML", problems=[f"{where}:{exc.line}:{exc.column}: (file): {exc}"]
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the file must contain a mapping at top level")
    # Paths may use ${VAR}; unset ones stay as written (the diff must not depend on a CI secret).
    return dict(expand(data, env=os.environ, on_missing=lambda _path, _name: None))


def _load_prompts(snapshot: Snapshot) -> None:
    prompts = snapshot.config.get("prompts")
    for name, ref in (prompts if isinstance(prompts, dict) else {}).items():
        file = ref.get("file") if isinstance(ref, dict) else None
        entry = PromptEntry(str(name), file if isinstance(file, str) else None)
        snapshot.prompts[entry.name] = entry
        if entry.file is None:
            entry.error = "no `file:` declared"
            continue
        entry.text = snapshot.read_text(entry.file)
        if entry.text is None:
            entry.error = f"file {entry.file} does not exist"
            continue
        try:
            entry.spec = parse_prompt_text(entry.text, name=entry.name, file=entry.file, read_text=snapshot.read_text)
        except ConfigError as exc:
            entry.error = "; ".join([exc.message, *exc.problems])


def worktree_snapshot(root: Path) -> Snapshot:
    """The project as it is on disk (uncommitted changes included)."""
    reader = disk_reader(root)
    text = reader(CONFIG_NAME)
    snapshot = Snapshot(None, WORK_TREE, _parse_config(text, CONFIG_NAME), reader, has_config=text is not None)
    _load_prompts(snapshot)
    return snapshot


def revision_reader(repo: GitRepo, prefix: str, rev: str) -> TextReader:
    """A :data:`TextReader` over project-relative paths as they were at commit ``rev``."""

    def read(relative: str) -> str | None:
        if Path(relative).is_absolute():
            try:
                path = repo.relpath(Path(relative))
            except VersioningError:
                return None
        else:
            path = posixpath.normpath(posixpath.join(prefix, relative))
        if path.startswith("../"):
            return None
        return repo.show_file(rev, path)

    return read


def revision_snapshot(repo: GitRepo, prefix: str, rev: str, label: str) -> Snapshot:
    """The project as committed at ``rev`` (a full sha); an absent llmops.yaml means no prompts yet."""
    reader = revision_reader(repo, prefix, rev)
    text = reader(CONFIG_NAME)
    config = _parse_config(text, f"{CONFIG_NAME} at {label}")
    snapshot = Snapshot(rev, label, config, reader, has_config=text is not None)
    _load_prompts(snapshot)
    return snapshot


# -- choosing the revisions ----------------------------------------------------------------------


def is_shallow(repo: GitRepo) -> bool:
    try:
        return repo.git("rev-parse", "--is-shallow-repository").strip() == "true"
    except VersioningError:
        return False


def _verify(repo: GitRepo, rev: str) -> str | None:
    try:
        return repo.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip() or None
    except VersioningError:
        return None


def commit_of(repo: GitRepo, rev: str) -> str:
    """The full sha ``rev`` names; a clear error (shallow clone, or unknown revision) otherwise."""
    sha = _verify(repo, rev)
    if sha:
        return sha
    if is_shallow(repo):
        raise VersioningError(f"revision '{rev}' is not in this clone", hint=_SHALLOW_HINT)
    raise UsageError(
        f"unknown git revision '{rev}'", hint="Give a branch, tag or commit (e.g. --from main, --from HEAD~1)."
    )


def default_branch(repo: GitRepo) -> str | None:
    """The branch pull requests merge into: origin/HEAD's target, else main, else master."""
    candidates: list[str] = []
    try:
        target = repo.git("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD").strip()
    except VersioningError:
        target = ""
    if target.startswith("refs/remotes/"):
        candidates.append(target[len("refs/remotes/") :])
    candidates += ["main", "origin/main", "master", "origin/master"]
    return next((c for c in candidates if _verify(repo, c)), None)


def merge_base(repo: GitRepo, head: str) -> tuple[str, str]:
    """``(sha, label)`` of the merge-base of ``head`` with the default branch."""
    base = default_branch(repo)
    if base is None:
        if is_shallow(repo):
            raise VersioningError("cannot find the default branch (main or master) in this clone", hint=_SHALLOW_HINT)
        raise UsageError(
            "cannot find the default branch to compare with (tried origin/HEAD, main, master)",
            hint="Pass --from REV (e.g. --from HEAD~1 or --from origin/develop).",
        )
    try:
        sha = repo.git("merge-base", base, head).strip()
    except VersioningError:
        sha = ""
    if not sha:
        if is_shallow(repo):
            raise VersioningError(f"cannot find where this branch forked from '{base}'", hint=_SHALLOW_HINT)
        raise UsageError(f"HEAD and '{base}' have no common ancestor", hint="Pass --from REV explicitly.")
    return sha, f"{base} (merge-base {sha[:10]})"


def open_repo(root: Path) -> tuple[GitRepo, str]:
    """The git repository holding the project at ``root`` and the project's path inside it."""
    from llmops_cli.versioning.gitrepo import GitRepo

    repo = GitRepo(root)
    return repo, repo.relpath(root)


def snapshots(root: Path, from_rev: str | None = None, to_rev: str | None = None) -> tuple[Snapshot, Snapshot]:
    """Both sides of a diff. Default: from the merge-base with the default branch to the work tree."""
    repo, prefix = open_repo(root)
    new: Snapshot
    if to_rev is not None:
        to_sha = commit_of(repo, to_rev)
        new = revision_snapshot(repo, prefix, to_sha, f"{to_rev} ({to_sha[:10]})")
    else:
        to_sha = None
        new = worktree_snapshot(root)
    if from_rev is not None:
        from_sha = commit_of(repo, from_rev)
        label = f"{from_rev} ({from_sha[:10]})"
    else:
        head = to_sha or repo.head()
        if head is None:
            raise UsageError("the repository has no commits yet", hint="Commit first, or pass --from REV.")
        from_sha, label = merge_base(repo, head)
    return revision_snapshot(repo, prefix, from_sha, label), new
