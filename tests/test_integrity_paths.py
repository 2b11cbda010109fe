"""Project paths stay inside the project; trust_remote_code needs --allow-code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.errors import EXIT_USAGE, UsageError
from llmops_cli.validation import load_config
from tests.helpers import git

CHAT = '{"messages": [{"role": "user", "content": "root password?"}, {"role": "assistant", "content": "hunter2"}]}\n'


def _edit(project: Path, section: str, name: str, **values: Any) -> None:
    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data[section][name].update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _commits(project: Path) -> int:
    return len(git(project, "log", "--oneline").splitlines())


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "train.jsonl").write_text(CHAT * 5)
    (outside / "secret.md").write_text("# Secret\n\nThe vault code is 0000.\n")
    (outside / "prompt.yaml").write_text(
        (Path(__file__).parents[1] / "templates/project/prompts/answer.yaml").read_text()
    )
    return outside


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_dataset_outside_the_project_is_refused(project: Path, secret: Path, cli: Any, how: str) -> None:
    if how == "absolute":
        _edit(project, "datasets", "train", path=str(secret / "train.jsonl"))
    elif how == "dotdot":
        _edit(project, "datasets", "train", path=os.path.relpath(secret / "train.jsonl", project))
    else:
        (project / "data" / "train.jsonl").unlink()
        os.symlink(secret / "train.jsonl", project / "data" / "train.jsonl")
    before = _commits(project)

    result = cli("validate", cwd=project)
    assert result.exit_code == EXIT_USAGE, result.output
    flat = " ".join(result.output.split())
    assert "llmops.yaml:" in flat and "datasets.train.path" in flat
    assert "outside the project" in flat and "add 'allow_outside: true' to datasets.train" in flat
    if how == "symlink":
        assert "through a symlink" in flat

    result = cli("data", "snapshot", "train", cwd=project)
    assert result.exit_code == EXIT_USAGE, result.output
    assert _commits(project) == before  # nothing from outside was committed
    assert "hunter2" not in git(project, "log", "-p", "--all")


def test_allow_outside_lets_an_entry_read_outside(project: Path, secret: Path) -> None:
    _edit(project, "datasets", "train", path=str(secret / "train.jsonl"), allow_outside=True)
    config = load_config(project)
    assert config.datasets["train"].allow_outside is True


def test_error_names_the_line(project: Path, secret: Path, cli: Any) -> None:
    text = (project / "llmops.yaml").read_text()
    (project / "llmops.yaml").write_text(text.replace("data/train.jsonl", str(secret / "train.jsonl")))
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "data/train.jsonl" in t)
    result = cli("validate", cwd=project)
    assert f"llmops.yaml:{line}:" in result.output


def test_prompt_file_and_examples_outside_are_refused(project: Path, secret: Path, cli: Any) -> None:
    _edit(project, "prompts", "answer", file=str(secret / "prompt.yaml"))
    result = cli("validate", cwd=project)
    assert result.exit_code == EXIT_USAGE
    flat = " ".join(result.output.split())
    assert "prompts.answer.file" in flat and "allow_outside: true' to prompts.answer" in flat

    _edit(project, "prompts", "answer", file="prompts/answer.yaml")
    prompt = project / "prompts" / "answer.yaml"
    data = yaml.safe_load(prompt.read_text())
    (secret / "shots.jsonl").write_text('{"question": "q", "context": "c", "output": "o"}\n')
    data["examples"] = os.path.relpath(secret / "shots.jsonl", project)
    prompt.write_text(yaml.safe_dump(data, sort_keys=False))
    result = cli("validate", cwd=project)
    assert result.exit_code == EXIT_USAGE
    assert "examples" in result.output and "allow_outside: true' to prompts.answer" in " ".join(result.output.split())
    _edit(project, "prompts", "answer", allow_outside=True)
    assert cli("validate", cwd=project).exit_code == 0


def test_documents_folder_symlinks_out_are_refused(project: Path, secret: Path, cli: Any) -> None:
    from llmops_cli.retrieval.documents import load_documents

    os.symlink(secret / "secret.md", project / "docs" / "secret.md")
    assert cli("validate", cwd=project).exit_code == 0  # the folder itself is inside
    with pytest.raises(UsageError, match="secret.md is a symlink to .*outside the project"):
        load_documents(project / "docs", root=project)
    result = cli("data", "validate", "docs", cwd=project)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "symlink" in result.output and "0000" not in result.output
    # a link inside the project is fine
    (project / "docs" / "secret.md").unlink()
    os.symlink(project / "docs" / "about.md", project / "docs" / "again.md")
    (project / "docs" / "again.md").unlink()  # (ids would clash; the link itself was accepted)


def test_documents_folder_that_is_a_symlink_out_is_refused(project: Path, secret: Path, cli: Any) -> None:
    os.symlink(secret, project / "kb")
    _edit(project, "datasets", "docs", path="kb/")
    result = cli("validate", cwd=project)
    assert result.exit_code == EXIT_USAGE
    assert "datasets.docs.path" in result.output and "through a symlink" in " ".join(result.output.split())
    _edit(project, "datasets", "docs", allow_outside=True)
    assert cli("validate", cwd=project).exit_code == 0
    from llmops_cli.retrieval.documents import load_documents

    assert [d.source for d in load_documents(project / "kb", root=project, file_format="md")]  # allowed: read


def test_dataset_folder_symlink_out_is_refused(project: Path, secret: Path) -> None:
    from llmops_cli.data.readers import dataset_files

    folder = project / "data" / "more"
    folder.mkdir()
    (folder / "a.jsonl").write_text(CHAT)
    os.symlink(secret / "train.jsonl", folder / "b.jsonl")
    with pytest.raises(UsageError, match="b.jsonl is a symlink"):
        dataset_files(folder, "auto", root=project)
    assert len(dataset_files(folder, "auto")) == 2  # without a project bound (library use), as before


# -- trust_remote_code ---------------------------------------------------------------------------


def test_trust_remote_code_needs_allow_code(project: Path, monkeypatch: pytest.MonkeyPatch, cli: Any) -> None:
    from llmops_cli.models import trust
    from llmops_cli.models.materialize import load_model
    from llmops_cli.tune.modeling import BaseModel

    monkeypatch.delenv(trust.ENV_VAR, raising=False)
    monkeypatch.setitem(trust._consent, "allowed", False)
    _edit(project, "models", "base", trust_remote_code=True, runtime="transformers")  # llama.cpp runs no model code
    config = load_config(project)
    spec = config.models["base"]
    with pytest.raises(UsageError, match="sets trust_remote_code: true") as info:
        load_model(spec, project)
    assert "--allow-code" in (info.value.hint or "") and info.value.exit_code == EXIT_USAGE
    with pytest.raises(UsageError, match="--allow-code"):
        BaseModel.from_spec(spec, project)

    data = yaml.safe_load((project / "llmops.yaml").read_text())
    data["chains"]["direct"] = {"steps": [{"prompt": "answer", "model": "base", "output": "answer"}]}
    (project / "llmops.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    result = cli("chain", "run", "direct", "--var", "question=hi", "--var", "context=c", cwd=project)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "trust_remote_code" in result.output and "internal error" not in result.output

    monkeypatch.setenv(trust.ENV_VAR, "1")
    assert BaseModel.from_spec(spec, project).trust_remote_code is True
    monkeypatch.delenv(trust.ENV_VAR)
    trust.allow_project_code()
    assert trust.remote_code_allowed("base", True) is True
    assert trust.remote_code_allowed("base", False) is False
