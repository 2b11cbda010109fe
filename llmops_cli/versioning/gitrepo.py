"""The git operations llmops needs, through gitpython, done without disturbing the user's work.

``commit_paths`` commits *only* the given paths: it builds the commit in a temporary index seeded
from HEAD, so whatever the user has staged or modified elsewhere stays exactly as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.errors import VersioningError

_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "llmops",
    "GIT_AUTHOR_EMAIL": "llmops@localhost",
    "GIT_COMMITTER_NAME": "llmops",
    "GIT_COMMITTER_EMAIL": "llmops@localhost",
}


@dataclass(frozen=True)
class TagInfo:
    name: str
    commit: str
    date: str  # ISO 8601
    message: str


class GitRepo:
    """A git work tree containing the project (the project may be a subdirectory of it)."""

    def __init__(self, path: Path) -> None:
        import git

        try:
            self.repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise VersioningError(
                f"{path} is not inside a git repository; llmops versions artifacts in git.",
                hint="Run 'git init' there (or 'llmops init', which does it for you).",
            ) from None
        if self.repo.bare or self.repo.working_tree_dir is None:
            raise VersioningError(f"{path}: a bare git repository has no work tree to version files in")
        self.root = Path(self.repo.working_tree_dir).resolve()
        self._identity_env = self._identity()

    # -- helpers -----------------------------------------------------------------------------
    def _identity(self) -> dict[str, str]:
        """Fall back to an 'llmops' identity only when git has none configured."""
        reader = self.repo.config_reader()
        has_name = reader.has_option("user", "name") or "GIT_AUTHOR_NAME" in os.environ
        has_email = reader.has_option("user", "email") or "GIT_AUTHOR_EMAIL" in os.environ
        return {} if (has_name and has_email) else dict(_FALLBACK_IDENTITY)

    def git(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> str:
        import git

        try:
            return self.repo.git.execute(["git", *args], env={**self._identity_env, **(env or {})}, **kwargs)
        except git.GitCommandError as exc:
            stderr = (exc.stderr or "").strip().replace("stderr: ", "").strip("'\n ")
            raise VersioningError(f"git {args[0]} failed: {stderr or exc}") from None

    def relpath(self, path: Path) -> str:
        """``path`` relative to the work tree root, in git's '/' form."""
        try:
            return Path(os.path.relpath(path.resolve(), self.root)).as_posix()
        except ValueError:
            raise VersioningError(f"{path} is outside the git work tree {self.root}") from None

    def head(self) -> str | None:
        try:
            return self.repo.head.commit.hexsha
        except ValueError:  # unborn branch: no commit yet
            return None

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
        fd, index_file = tempfile.mkstemp(prefix="llmops-index-", dir=self.repo.git_dir)
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
        with tempfile.TemporaryFile() as stdin:  # gitpython's istream wants a real file
            stdin.write(text.encode("utf-8"))
            stdin.seek(0)
            return self.git(*args, istream=stdin)

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
        return self.repo.odb.stream(bytes.fromhex(sha)).read()

    def commit_message(self, rev: str) -> str:
        return self.git("log", "-1", "--format=%B", rev)
