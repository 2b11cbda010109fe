"""GitRepo runs git as subprocesses: discovery, identity, output handling, errors; no GitPython."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmops_cli.errors import VersioningError
from llmops_cli.versioning.gitrepo import GitRepo
from tests.helpers import git


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    (root / "sub" / "deeper").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    return root


def test_importing_and_using_gitrepo_never_imports_gitpython(work: Path) -> None:
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from llmops_cli.versioning.gitrepo import GitRepo\n"
        f"repo = GitRepo(Path({str(work)!r}))\n"
        "repo.head(); repo.git('status', '--porcelain')\n"
        "print(sorted(m for m in ('git', 'gitdb', 'smmap') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_found_from_a_subdirectory(work: Path) -> None:
    repo = GitRepo(work / "sub" / "deeper")
    assert repo.root == work.resolve()
    assert Path(repo.git_dir) == (work / ".git").resolve()
    assert repo.relpath(work / "sub" / "deeper") == "sub/deeper"


@pytest.mark.parametrize("where", ["plain", "missing", "file", "dot-git"])
def test_not_inside_a_work_tree(tmp_path: Path, work: Path, where: str) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "file").write_text("x")
    path = {"plain": tmp_path / "plain", "missing": tmp_path / "nope", "file": tmp_path / "file"}.get(where)
    path = path or work / ".git"
    with pytest.raises(VersioningError, match="is not inside a git repository") as info:
        GitRepo(path)
    assert "git init" in (info.value.hint or "")


def test_bare_repository(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    with pytest.raises(VersioningError, match="a bare git repository has no work tree"):
        GitRepo(tmp_path / "bare.git")


def test_head_unborn_then_committed_and_blob_bytes(work: Path) -> None:
    repo = GitRepo(work)
    assert repo.head() is None
    data = b"\x00\xffbinary\n\n"
    (work / "sub" / "blob.bin").write_bytes(data)
    sha = repo.commit_paths(["sub/blob.bin"], "add blob\n", tag="blob/v1")
    assert repo.head() == sha == git(work, "rev-parse", "HEAD").strip()
    [(_mode, blob, path)] = repo.ls_tree(sha, "sub")
    assert path == "sub/blob.bin" and repo.blob_bytes(blob) == data
    [tag] = repo.list_tags("blob/*")
    assert (tag.name, tag.commit, tag.message) == ("blob/v1", sha, "add blob")
    with pytest.raises(VersioningError, match="git cat-file failed"):
        repo.blob_bytes("0" * 40)


def test_stdout_loses_one_trailing_newline_unless_asked(work: Path) -> None:
    (work / "two.txt").write_text("text\n\n")
    repo = GitRepo(work)
    repo.commit_paths(["two.txt"], "two\n")
    assert repo.git("show", "HEAD:two.txt") == "text\n"
    assert repo.git("show", "HEAD:two.txt", strip_newline_in_stdout=False) == "text\n\n"
    assert repo.show_file("HEAD", "two.txt") == "text\n\n"
    assert repo.show_file("HEAD", "absent.txt") is None


def test_a_failing_command_says_which_and_why_in_english(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    with pytest.raises(VersioningError) as info:
        GitRepo(work).git("rev-parse", "--verify", "no-such-branch")
    assert info.value.message == "git rev-parse failed: fatal: Needed a single revision"


def test_identity_falls_back_to_llmops_only_without_one(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    repo = GitRepo(work)
    (work / "a.txt").write_text("a")
    repo.commit_paths(["a.txt"], "a\n")
    assert git(work, "log", "-1", "--format=%an <%ae>").strip() == "llmops <llmops@localhost>"
    assert repo.config_value("user.name") == ""

    git(work, "config", "user.name", "Repo Person")
    git(work, "config", "user.email", "repo@example.com")
    repo = GitRepo(work)
    (work / "b.txt").write_text("b")
    repo.commit_paths(["b.txt"], "b\n")
    assert git(work, "log", "-1", "--format=%an <%ae>").strip() == "Repo Person <repo@example.com>"
    assert (repo.config_value("user.name"), repo.config_value("user.email")) == ("Repo Person", "repo@example.com")


def test_identity_from_the_environment_counts(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Env Person")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "env@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Env Person")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "env@example.com")
    repo = GitRepo(work)
    (work / "a.txt").write_text("a")
    repo.commit_paths(["a.txt"], "a\n")
    assert git(work, "log", "-1", "--format=%an <%ae>").strip() == "Env Person <env@example.com>"


def test_commands_that_only_read_do_not_look_up_the_identity(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.versioning import gitrepo

    ran: list[list[str]] = []
    real = gitrepo._run

    def recording(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        ran.append(args)
        return real(args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gitrepo, "_run", recording)
    repo = GitRepo(work)
    repo.git("status", "--porcelain")
    assert repo.head() is None
    repo.git("for-each-ref", "refs/tags")
    assert not any(args[0] == "config" for args in ran)
    (work / "a.txt").write_text("a")
    repo.commit_paths(["a.txt"], "a\n")  # writes: the identity is looked up, once
    assert sum(args[0] == "config" for args in ran) == 1
