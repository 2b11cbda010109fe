"""Core layer: loading and validating llmops.yaml."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llmops_cli.config.yamlpos import YamlLoadError, load_located, loads_located
from llmops_cli.errors import EXIT_USAGE, ConfigError
from llmops_cli.validation import load_config, validate_project
from tests.helpers import SAMPLE_PROJECT


def _messages(root: Path, env: dict[str, str] | None = None) -> list[str]:
    return [str(p) for p in validate_project(root, env=env or {}).problems]


def test_sample_project_is_valid() -> None:
    result = validate_project(SAMPLE_PROJECT, env={})
    assert result.problems == []
    cfg = result.config
    assert cfg is not None
    for section in ("models", "prompts", "datasets", "retrievers", "chains", "adapters", "evals",
                    "quantized", "packages", "deployments"):  # fmt: skip
        assert getattr(cfg, section), f"sample project does not use '{section}'"
    assert cfg.monitor


def test_init_template_is_valid(project: Path) -> None:
    cfg = load_config(project, env={})
    assert cfg.name == "proj"
    assert cfg.models["base"].source == "smollm2-135m-instruct"
    assert not cfg.models["base"].is_remote


def test_three_mistakes_reported_with_lines(project: Path) -> None:
    path = project / "llmops.yaml"
    text = path.read_text()
    text = text.replace("retrievers:", "retreivers:")  # misspelled section
    text = text.replace("{prompt: answer, model: base", "{prompt: answr, model: base")  # bad reference
    text = text.replace("method: lora", "method: lorra")  # bad enum value
    path.write_text(text)
    lines = text.splitlines()
    problems = validate_project(project, env={}).problems
    by_path = {p.path: p for p in problems}
    assert "retreivers" in by_path and "did you mean 'retrievers'" in by_path["retreivers"].message
    assert lines[by_path["retreivers"].line - 1].startswith("retreivers:")
    step = by_path["chains.rag-answer.steps[1].prompt"]
    assert "unknown prompt 'answr'" in step.message and "did you mean 'answer'" in step.message
    assert "answr" in lines[step.line - 1]
    method = by_path["adapters.answer-lora.method"]
    assert "lorra" in lines[method.line - 1] and method.column > 1
    with pytest.raises(ConfigError) as info:
        load_config(project, env={})
    assert info.value.exit_code == EXIT_USAGE
    assert all(p.startswith("llmops.yaml:") or "/llmops.yaml:" in p for p in info.value.problems)


def test_missing_prompt_file_and_unknown_dataset(project: Path) -> None:
    path = project / "llmops.yaml"
    text = path.read_text().replace("prompts/answer.yaml", "prompts/nope.yaml")
    text = text.replace("dataset: train", "dataset: trian")
    path.write_text(text)
    msgs = _messages(project)
    assert any("prompts.answer.file" in m and "does not exist" in m for m in msgs)
    assert any("adapters.answer-lora.dataset" in m and "did you mean 'train'" in m for m in msgs)


def test_env_expansion(project: Path) -> None:
    path = project / "llmops.yaml"
    text = path.read_text().replace(
        "models:\n", 'models:\n  hosted: {provider: openai, base_url: "${MY_URL}", model: m}\n'
    )
    path.write_text(text)
    msgs = _messages(project, env={})
    assert any("models.hosted.base_url" in m and "${MY_URL} is not set" in m for m in msgs)
    cfg = load_config(project, env={"MY_URL": "http://127.0.0.1:9/v1"})
    assert cfg.models["hosted"].base_url == "http://127.0.0.1:9/v1"
    assert cfg.models["hosted"].is_remote
    path.write_text(text.replace("${MY_URL}", "${MY_URL:-http://localhost:1/v1}"))
    assert load_config(project, env={}).models["hosted"].base_url == "http://localhost:1/v1"


def test_env_expansion_keeps_numbers(project: Path) -> None:
    path = project / "llmops.yaml"
    path.write_text(path.read_text().replace("top_k: 3", 'top_k: "${TOPK}"'))
    cfg = load_config(project, env={"TOPK": "5"})
    assert cfg.retrievers["kb"].top_k == 5


def test_duplicate_keys_and_yaml_syntax(project: Path) -> None:
    path = project / "llmops.yaml"
    original = path.read_text()
    path.write_text(original.replace("version: 1\n", "version: 1\nversion: 1\n"))
    assert any("duplicate key" in m for m in _messages(project))
    path.write_text(original + "\nbroken: [unclosed\n")
    msgs = _messages(project)
    assert len(msgs) == 1 and "YAML syntax error" in msgs[0]
    line = int(msgs[0].split(":")[1])
    assert line >= path.read_text().splitlines().index("broken: [unclosed") + 1


def test_yaml_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(YamlLoadError, match="too many nodes"):
        load_located(path)
    assert time.perf_counter() - start < 5


def test_huge_file_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MB that cost nothing to make
    with pytest.raises(YamlLoadError, match="limit"):
        load_located(path)


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(YamlLoadError):
        loads_located("a: !!python/object/apply:os.system ['echo pwned']\n")


def test_scientific_floats_are_numbers() -> None:
    assert loads_located("lr: 2e-4\n").data == {"lr": 2e-4}


def test_key_positions() -> None:
    located = loads_located("a:\n  b:\n    - {c: 1}\n")
    assert located.mark(("a", "b", 0, "c"), key=True) == (3, 8)
    assert located.mark(("a", "missing")) == located.mark(("a",))
