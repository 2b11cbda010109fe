"""The git operations llmops needs, as ``git`` subprocesses, done without disturbing the user's work.

``commit_paths`` commits *only* the given paths: it builds the commit in a temporary index seeded
from HEAD, so whatever the user has staged or modified elsewhere stays exactly as it was.

Plain ``subprocess`` rather than GitPython: every operation here is a git command anyway, and
importing GitPython cost ~0.1 s in each command that touches versioning.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.errors import VersioningError

_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "llmops",
    "GIT_AUTHOR_EMAIL": "llmops@localhost",
    "GIT_COMMITTER_NAME": "llmops",
    "GIT_COMMITTER_EMAIL": "llmops@localhost",
}
# git's messages in plain English whatever the user's locale (as GitPython ran it), so errors read
# the same everywhere.
_C_LOCALE = {"LANGUAGE": "C", "LC_ALL": "C"}


# Commands that never write an author, committer, tagger or reflog entry: they run without looking
# up the identity fallback (one git process less for a command that only reads).
_READS_ONLY = frozenset(
    {"log", "status", "for-each-ref", "show", "ls-tree", "rev-parse", "cat-file", "diff", "ls-files"}
)


@dataclass(frozen=True)
class TagInfo:
    name: str
    commit: str
    date: str  # ISO 8601
    message: str


def _run(
    args: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``git *args`` with its output captured; stdin is ``input_bytes`` or nothing (never a terminal)."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**os.environ, **_C_LOCALE, **(env or {})},
            input=input_bytes,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        if exc.filename != "git":  # the work tree itself is gone
            raise VersioningError(f"git {args[0]} failed: {exc}") from None
        raise VersioningError(
            "git is not installed (or not on PATH); llmops versions artifacts in git.",
            hint="Install git (https://git-scm.com/downloads) and retry.",
        ) from None


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class GitRepo:
    """A git work tree containing the project (the project may be a subdirectory of it)."""

    def __init__(self, path: Path) -> None:
        found = _run(["-C", str(path), "rev-parse", "--is-bare-repository", "--absolute-git-dir", "--show-toplevel"])
        lines = _decode(found.stdout).splitlines()
        if lines[:1] == ["true"]:
            raise VersioningError(f"{path}: a bare git repository has no work tree to version files in")
        if found.returncode != 0 or len(lines) != 3:
            stderr = _decode(found.stderr).strip()
            if lines or "not a git repository" in stderr or "cannot change to" in stderr:
                # outside any repository, a path that does not exist, or inside a .git directory
                raise VersioningError(
                    f"{path} is not inside a git repository; llmops versions artifacts in git.",
                    hint="Run 'git init' there (or 'llmops init', which does it for you).",
                )
            raise VersioningError(f"git rev-parse failed: {stderr or f'exit status {found.returncode}'}")
        self.git_dir = lines[1]
        self.root = Path(lines[2]).resolve()
        self._identity_env: dict[str, str] | None = None  # looked up with the first git command

    # -- helpers -----------------------------------------------------------------------------
    def _identity(self) -> dict[str, str]:
        """Fall back to an 'llmops' identity only when git has none configured."""
        found = _run(["config", "--name-only", "--get-regexp", r"^user\.(name|email)$"], cwd=self.root)
        if found.returncode not in (0, 1):  # 1: neither is set
            raise VersioningError(f"git config failed: {_decode(found.stderr).strip()}")
        keys = set(_decode(found.stdout).split())
        has_name = "user.name" in keys or "GIT_AUTHOR_NAME" in os.environ
        has_email = "user.email" in keys or "GIT_AUTHOR_EMAIL" in os.environ
        return {} if (has_name and has_email) else dict(_FALLBACK_IDENTITY)

    def git(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input_bytes: bytes | None = None,
        strip_newline_in_stdout: bool = True,
    ) -> str:
        """``git *args`` in the work tree; its stdout (less one trailing newline unless told otherwise)."""
        identity: dict[str, str] = {}
        if args[0] not in _READS_ONLY:
            if self._identity_env is None:
                self._identity_env = self._identity()
            identity = self._identity_env
        done = _run(list(args), cwd=self.root, env={**identity, **(env or {})}, input_bytes=input_bytes)
        if done.returncode != 0:
            stderr = _decode(done.stderr).strip()
            raise VersioningError(f"git {args[0]} failed: {stderr or f'exit status {done.returncode}'}")
        out = _decode(done.stdout)
        return out[:-1] if strip_newline_in_stdout and out.endswith("\n") else out

    def config_value(self, key: str) -> str:
        """The value git has configured for ``key`` (e.g. ``user.name``); "" when it is not set."""
        found = _run(["config", "--get", key], cwd=self.root)
        return _decode(found.stdout).rstrip("\n") if found.returncode == 0 else ""

    def relpath(self, path: Path) -> str:
        """``path`` relative to the work tree root, in git's '/' form."""
        try:
            return Path(os.path.relpath(path.resolve(), self.root)).as_posix()
        except ValueError:
            raise VersioningError(f"{path} is outside the git work tree {self.root}") from None

    def head(self) -> str | None:
        found = _run(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=self.root)
        if found.returncode != 0:  # unborn branch: no commit yet
            return None
        return _decode(found.stdout).strip()

    # -- commits -------------------------------------------------------------------------------
    def commit_paths(self, paths: Iterable[str], message: str, *, tag: str | None = None) -> str:
        """Commit the current content of ``paths`` (work-tree relative) and nothing else.

        Returns the new commit sha. The user's index keeps its other entries; for ``paths`` it is
        reset to the new commit so ``git status`` shows them clean. With ``tag``, an annotated tag
        of that name (with ``message``) is created in the same ref transaction that moves HEAD:
        a crash at any point leaves either both or neither, never an untagged artifact commit.
        """
        paths = sorted(set(paths))
        parent = self.head()
        fd, index_file = tempfile.mkstemp(prefix="llmops-index-", dir=self.git_dir)
        os.close(fd)
        os.unlink(index_file)  # git wants to create it
        env = {"GIT_INDEX_FILE": index_file}
        try:
            if parent:
                self.git("read-tree", parent, env=env)
            else:
                self.git("read-tree", "--empty", env=env)
            self.git("add", "--all", "--", *paths, env=env)
            tree = self.git("write-tree", env=env)
            if parent and tree == self.git("rev-parse", f"{parent}^{{tree}}"):
                raise VersioningError("nothing changed in " + ", ".join(paths))
            args = ["commit-tree", tree, "-m", message]
            if parent:
                args += ["-p", parent]
            commit = self.git(*args)
        finally:
            if os.path.exists(index_file):
                os.unlink(index_file)
        tag_object = self._tag_object(tag, commit, message) if tag else None
        # The user's own index follows the new commit for our paths only. Done before HEAD moves:
        # if we die here, HEAD is unchanged and a rerun commits the same paths again.
        self.git("reset", "-q", commit, "--", *paths)
        updates = [f"update HEAD {commit} {parent or '0' * 40}"]
        if tag_object:
            updates.append(f"create refs/tags/{tag} {tag_object}")
        self._update_refs(updates, message.splitlines()[0])
        return commit

    def _tag_object(self, name: str, commit: str, message: str) -> str:
        """Write (but do not point any ref at) an annotated tag object; returns its sha."""
        if self.git("tag", "--list", name):
            raise VersioningError(f"tag {name} already exists", hint=f"'git show {name}' shows what it points to.")
        self.git("check-ref-format", f"refs/tags/{name}")
        tagger = self.git("var", "GIT_COMMITTER_IDENT")
        body = f"object {commit}\ntype commit\ntag {name}\ntagger {tagger}\n\n{message.rstrip()}\n"
        return self._git_stdin(body, "mktag")

    def _update_refs(self, updates: list[str], reason: str) -> None:
        """Apply ``updates`` (``git update-ref --stdin`` lines) all together or not at all."""
        script = "start\n" + "".join(f"{line}\n" for line in updates) + "prepare\ncommit\n"
        self._git_stdin(script, "update-ref", "-m", reason, "--stdin")

    def _git_stdin(self, text: str, *args: str) -> str:
        return self.git(*args, input_bytes=text.encode("utf-8"))

    def tag(self, name: str, commit: str, message: str) -> None:
        self.git("tag", "-a", name, commit, "-m", message)

    def list_tags(self, pattern: str) -> list[TagInfo]:
        fmt = "%(refname:strip=2)%00%(*objectname)%00%(objectname)%00%(creatordate:iso-strict)%00%(contents)%01"
        out = self.git("for-each-ref", f"--format={fmt}", f"refs/tags/{pattern}", strip_newline_in_stdout=False)
        tags = []
        for record in out.split("\x01"):
            record = record.lstrip("\n")
            if not record:
                continue
            name, peeled, obj, date, contents = record.split("\x00", 4)
            tags.append(TagInfo(name, peeled or obj, date, contents.strip()))
        return tags

    def show_file(self, rev: str, path: str) -> str | None:
        try:
            return self.git("show", f"{rev}:{path}", strip_newline_in_stdout=False)
        except VersioningError:
            return None

    def ls_tree(self, rev: str, path: str) -> list[tuple[str, str, str]]:
        """``(mode, blob sha, path)`` of every file under ``path`` at ``rev``."""
        out = self.git("ls-tree", "-r", "-z", rev, "--", path, strip_newline_in_stdout=False)
        rows = []
        for entry in out.split("\x00"):
            if entry:
                meta, name = entry.split("\t", 1)
                mode, _type, sha = meta.split()
                rows.append((mode, sha, name))
        return rows

    def blob_bytes(self, sha: str) -> bytes:
        found = _run(["cat-file", "blob", sha], cwd=self.root)
        if found.returncode != 0:
            raise VersioningError(f"git cat-file failed: {_decode(found.stderr).strip()}")
        return found.stdout

    def commit_message(self, rev: str) -> str:
        return self.git("log", "-1", "--format=%B", rev)
