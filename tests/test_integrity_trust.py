"""``trust_remote_code: true`` needs --allow-code (or LLMOPS_ALLOW_CODE=1) on every command that loads the model.

The model here is the tiny random Llama of tests/fixtures/models.py: it ships no code, so transformers loads it
the same with ``trust_remote_code=True``; what is checked is that llmops refuses, or lets it
through, before transformers is asked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.errors import EXIT_USAGE, LlmopsError, UsageError
from llmops_cli.models import trust
from tests.fixtures.quantize import write_project


class Reached(LlmopsError):
    """Raised by a stand-in for the step after the trust check: the check let the command through."""

    exit_code = 99

    def __init__(self) -> None:
        super().__init__("reached the step after the trust check")


@pytest.fixture
def remote(tmp_path: Path, untied_llama_dir: Path) -> Path:
    """A project whose model ``tiny`` sets trust_remote_code: true."""
    root = write_project(tmp_path / "proj", untied_llama_dir, {"q8": {"model": "tiny", "bits": 8}})
    path = root / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["tiny"]["trust_remote_code"] = True
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def _refused(result: Any) -> None:
    assert result.exit_code == EXIT_USAGE, result.output
    flat = " ".join(result.output.split())
    assert "model 'tiny' sets trust_remote_code: true" in flat and "--allow-code" in flat, flat
    assert "internal error" not in flat


# -- the new flags: tune and quantize ------------------------------------------------------------


def test_tune_needs_allow_code(remote: Path, cli: Any) -> None:
    _refused(cli("tune", "a-lora", "--dry-run", cwd=remote))
    assert not trust.code_allowed()

    result = cli("tune", "a-lora", "--dry-run", "--allow-code", cwd=remote)
    assert result.exit_code == 0, result.output
    assert "trainable parameters" in result.output


def test_quantize_needs_allow_code(remote: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.quantize import pipeline

    real, seen = pipeline._source, []

    def source_then_stop(*args: Any, **kwargs: Any) -> Any:
        base = real(*args, **kwargs)[0]
        seen.append(base.trust_remote_code)
        raise Reached

    monkeypatch.setattr(pipeline, "_source", source_then_stop)
    args = ("quantize", "q8", "--no-check", "--no-baseline", "--device", "cpu")
    _refused(cli(*args, cwd=remote))
    assert seen == []

    result = cli(*args, "--allow-code", cwd=remote)
    assert result.exit_code == 99 and "reached the step after the trust check" in result.output, result.output
    assert seen == [True]  # the base model is loaded with trust_remote_code=True


def test_accelerate_workers_inherit_the_consent(remote: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.tune.launcher import _model_code_env
    from llmops_cli.validation import load_config

    config = load_config(remote)
    with pytest.raises(UsageError, match="--allow-code"):
        _model_code_env(config, "tiny")  # refused before any worker starts
    trust.allow_project_code()
    env = _model_code_env(config, "tiny")
    assert env is not None and env[trust.ENV_VAR] == "1"
    config.models["tiny"] = dataclasses.replace(config.models["tiny"], trust_remote_code=False)
    assert _model_code_env(config, "tiny") is None  # nothing to pass on: the workers' own environment


# -- every --allow-code flag also covers model code ----------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("chain", "run", "nope"),
        ("eval", "nope"),
        ("monitor", "--json", "--format", "html"),
        ("tune", "nope"),
        ("tune", "merge", "nope"),
        ("quantize", "nope"),
        ("index", "nope"),
        ("retrieve", "nope", "a query"),
        ("data", "stats", "nope"),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_allow_code_flags_consent_to_model_code(remote: Path, cli: Any, args: tuple[str, ...]) -> None:
    # Each command fails early here (no such chain, suite...): the consent is given before that.
    result = cli(*args, cwd=remote)
    assert result.exit_code != 0 and not trust.code_allowed(), result.output
    result = cli(*args, "--allow-code", cwd=remote)
    assert result.exit_code != 0 and "internal error" not in result.output
    assert trust.code_allowed()


# -- readers of trust_remote_code that go through the check ---------------------------------------


def test_load_quantized_checks_consent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.config.project import ModelSpec
    from llmops_cli.providers import quantized as loading

    folder = tmp_path / "q8"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    spec = ModelSpec.from_dict("q8", {"source": str(folder), "quantized": "q8", "trust_remote_code": True})
    loaded: list[bool] = []

    def load_folder(folder: Path, *, device: str = "cpu", trust_remote_code: bool = False) -> Any:
        loaded.append(trust_remote_code)
        raise Reached

    monkeypatch.setattr(loading, "load_quantized_folder", load_folder)
    with pytest.raises(UsageError, match="model 'q8' sets trust_remote_code: true") as info:
        loading.load_quantized(spec, folder)
    assert "--allow-code" in (info.value.hint or "") and loaded == []
    monkeypatch.setenv(trust.ENV_VAR, "1")
    with pytest.raises(Reached):
        loading.load_quantized(spec, folder)
    assert loaded == [True]


def test_embedding_model_checks_consent_when_it_loads(remote: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.retrieval import embeddings
    from llmops_cli.validation import load_config

    # Locating the model (as package build does) runs nothing, so it needs no consent.
    model = embeddings.resolve_embedding(load_config(remote), "tiny")
    assert model.trust_remote_code is True
    loaded: list[bool] = []

    def load(folder: Path, device: str, trust_remote_code: bool) -> Any:
        loaded.append(trust_remote_code)
        raise Reached

    monkeypatch.setattr(embeddings, "_load", load)
    embedder = embeddings.HFEmbedder(model, device="cpu")
    for call in (embedder.load, lambda: embedder.embed(["text"])):
        with pytest.raises(UsageError, match="model 'tiny' sets trust_remote_code: true"):
            call()
    assert loaded == []
    trust.allow_project_code()
    with pytest.raises(Reached):
        embedder.embed(["text"])
    assert loaded == [True]


def test_data_stats_tokenizer_needs_allow_code(remote: Path, cli: Any) -> None:
    _refused(cli("data", "stats", "chats", cwd=remote))
    result = cli("data", "stats", "chats", "--allow-code", "--json", cwd=remote)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 8
    assert cli("data", "stats", "chats", "--no-tokens", cwd=remote).exit_code == 0  # no tokenizer: no code
