"""``${VAR}`` allow-lists: LLMOPS_ENV_ALLOW and env.allow keep secrets out of configs and prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.errors import EXIT_USAGE

SECRET = "s3cr3t-token-value"


@pytest.fixture(autouse=True)
def _forget_project_allow_list() -> Any:
    from llmops_cli.config.envvars import set_project_allow

    yield
    set_project_allow(None)  # the last loaded project's list must not leak into other tests


@pytest.fixture
def leaky(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prompt whose system message reads $SECRET_TOKEN (as a crafted pull request might)."""
    monkeypatch.setenv("SECRET_TOKEN", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:9")
    monkeypatch.delenv("LLMOPS_ENV_ALLOW", raising=False)
    prompt = project / "prompts" / "answer.yaml"
    data = yaml.safe_load(prompt.read_text())
    data["system"] = "Be concise. ${SECRET_TOKEN}"
    prompt.write_text(yaml.safe_dump(data, sort_keys=False))
    return project


def _set_env_section(project: Path, allow: list[str]) -> None:
    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["env"] = {"allow": allow}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_without_an_allow_list_every_variable_expands(leaky: Path, cli: Any) -> None:
    result = cli("prompt", "render", "answer", "--var", "question=q", cwd=leaky)
    assert result.exit_code == 0 and SECRET in result.output


def test_ci_allow_list_keeps_a_secret_out(leaky: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_ENV_ALLOW", "OPENAI_*, HF_TOKEN")
    result = cli("validate", cwd=leaky)
    assert result.exit_code == EXIT_USAGE
    flat = " ".join(result.output.split())
    assert "${SECRET_TOKEN} may not be read here: it is not in LLMOPS_ENV_ALLOW" in flat
    assert SECRET not in result.output
    result = cli("prompt", "render", "answer", "--var", "question=q", cwd=leaky)
    assert result.exit_code == EXIT_USAGE and SECRET not in result.output


def test_a_refused_variable_takes_its_default(leaky: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    prompt = leaky / "prompts" / "answer.yaml"
    prompt.write_text(prompt.read_text().replace("${SECRET_TOKEN}", "${SECRET_TOKEN:-no secret here}"))
    monkeypatch.setenv("LLMOPS_ENV_ALLOW", "OPENAI_BASE_URL")
    result = cli("prompt", "render", "answer", "--var", "question=q", cwd=leaky)
    assert result.exit_code == 0, result.output
    assert "no secret here" in result.output and SECRET not in result.output


def test_project_allow_list(leaky: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _set_env_section(leaky, ["OPENAI_*"])
    result = cli("validate", cwd=leaky)
    assert result.exit_code == EXIT_USAGE
    assert "it is not in env.allow in llmops.yaml" in " ".join(result.output.split())

    _set_env_section(leaky, ["OPENAI_*", "SECRET_TOKEN"])
    assert cli("validate", cwd=leaky).exit_code == 0
    # CI's list restricts further: a name must pass both
    monkeypatch.setenv("LLMOPS_ENV_ALLOW", "OPENAI_*")
    result = cli("validate", cwd=leaky)
    assert result.exit_code == EXIT_USAGE and "not in LLMOPS_ENV_ALLOW" in " ".join(result.output.split())


def test_allow_list_patterns_are_validated(project: Path, cli: Any) -> None:
    _set_env_section(project, ["OK_NAME", "bad name!"])
    result = cli("validate", cwd=project)
    assert result.exit_code == EXIT_USAGE and "env.allow" in result.output


def test_prompt_file_names_the_allow_list_that_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A prompt file read on its own (load_prompt, a git revision) says why ${VAR} has no value."""
    from llmops_cli.config.envvars import set_project_allow
    from llmops_cli.errors import ConfigError
    from llmops_cli.prompts.spec import parse_prompt_text

    text = "template: hi\nsystem: 'Be concise. ${SECRET_TOKEN}'\n"
    env = {"SECRET_TOKEN": SECRET}

    def problems() -> str:
        with pytest.raises(ConfigError) as info:
            parse_prompt_text(text, name="answer", file="prompts/answer.yaml", env=env)
        assert SECRET not in str(info.value) + " ".join(info.value.problems)
        return " ".join(" ".join(info.value.problems).split())

    monkeypatch.setenv("LLMOPS_ENV_ALLOW", "OPENAI_*")
    flat = problems()
    assert "${SECRET_TOKEN} may not be read here: it is not in LLMOPS_ENV_ALLOW" in flat, flat
    assert "is not set" not in flat

    monkeypatch.delenv("LLMOPS_ENV_ALLOW")
    set_project_allow(["OPENAI_*"])
    assert "${SECRET_TOKEN} may not be read here: it is not in env.allow in llmops.yaml" in problems()

    set_project_allow(["OPENAI_*", "SECRET_*"])
    env.clear()  # allowed, but not set: the plain message
    assert "${SECRET_TOKEN} is not set (export it, or write ${SECRET_TOKEN:-default})" in problems()
    assert parse_prompt_text(text, name="answer", file="prompts/answer.yaml", env=None).system  # not expanded
