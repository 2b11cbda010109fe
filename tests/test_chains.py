"""Chains with a fake runtime: step semantics, conditions, transforms, code opt-in, traces."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.chains import ChainRunner, ChainStepError
from llmops_cli.errors import UsageError
from llmops_cli.generation import GenerationParams, GenerationRequest, GenerationResult
from llmops_cli.validation import load_config


@dataclass
class FakePrompt:
    name: str
    variables: dict[str, Any]
    model: str | None = "base"
    params: GenerationParams = field(default_factory=GenerationParams)
    file: str = "prompts/fake.yaml"


@dataclass
class Chunk:
    text: str
    source: str
    score: float
    heading: str | None = None


class EchoProvider:
    name = "echo"

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.log.append(requests)
        return [GenerationResult("ANSWER " + r.messages[-1]["content"], 7, 3, 1.0, "stop", "echo") for r in requests]


class FakeRuntime:
    def __init__(self, root: Path, *, fail_retrieve: bool = False) -> None:
        self.project_root = root
        self.calls: list[Any] = []
        self.fail_retrieve = fail_retrieve

    def prompt(self, name: str) -> FakePrompt:
        return FakePrompt(name, {"question": {}, "context": {}})

    def render_prompt(self, spec: FakePrompt, variables: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"Q={variables.get('question')} C={variables.get('context')}"}]

    def adapter_path(self, name: str) -> Path | None:
        return self.project_root / "artifacts" / "adapter" / name

    def provider(self, model: str, adapter: Path | None) -> EchoProvider:
        self.calls.append((model, adapter))
        return EchoProvider(self.calls)

    def retrieve(self, name: str, query: str, top_k: int | None) -> list[Chunk]:
        if self.fail_retrieve:
            raise UsageError("index 'kb' was never built", hint="Run 'llmops index kb'")
        return [Chunk(f"doc about {query}", "docs/a.md", 0.91, "Intro"), Chunk("second", "docs/b.md", 0.5)]


def _with_chains(project: Path, chains: dict[str, Any]) -> Any:
    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["chains"].update(chains)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(project, env={})


def test_rag_chain_passes_values_and_saves_trace(project: Path) -> None:
    cfg = load_config(project, env={})
    runtime = FakeRuntime(project)
    run = ChainRunner(cfg, runtime=runtime).run("rag-answer", {"question": "wifi"})
    assert run.result == "ANSWER Q=wifi C=doc about wifi\n\nsecond"
    assert [s.kind for s in run.steps] == ["retrieve", "prompt"]
    assert run.steps[0].details["chunks"][0] == {
        "rank": 1, "score": 0.91, "source": "docs/a.md", "heading": "Intro", "text": "doc about wifi"}  # fmt: skip
    assert run.steps[1].tokens == {"prompt": 7, "completion": 3} and run.tokens == {"prompt": 7, "completion": 3}
    lines = (project / ".llmops" / "traces" / "rag-answer.jsonl").read_text().splitlines()
    saved = json.loads(lines[-1])
    assert saved["status"] == "ok" and saved["result"] == run.result and saved["steps"][0]["inputs"]["query"] == "wifi"


def test_missing_input_is_a_usage_error(project: Path) -> None:
    cfg = load_config(project, env={})
    with pytest.raises(UsageError, match="needs input"):
        ChainRunner(cfg, runtime=FakeRuntime(project)).run("rag-answer", {})


def test_when_transforms_and_vars(project: Path) -> None:
    cfg = _with_chains(
        project,
        {
            "triage": {
                "inputs": ["ticket"],
                "steps": [
                    {"id": "label", "transform": "regex_extract", "input": "{{ ticket | lower }}",
                     "pattern": r"\b(billing|wifi)\b", "group": 1},
                    {"id": "payload", "transform": "json_parse", "input": 'noise {"label": "{{ label }}"} noise'},
                    {"id": "ask", "prompt": "answer", "model": "base", "when": "label == 'wifi'",
                     "vars": {"question": "route {{ payload.label }}", "context": "n/a"}},
                    {"id": "final", "transform": "template", "template": "{{ label }}|{{ ask | default('skipped') }}"},
                ],
            }
        },
    )  # fmt: skip
    runner = ChainRunner(cfg, runtime=FakeRuntime(project))
    wifi = runner.run("triage", {"ticket": "My WIFI drops"})
    assert wifi.result == "wifi|ANSWER Q=route wifi C=n/a"
    billing = runner.run("triage", {"ticket": "Billing question"})
    assert billing.steps[2].skipped and billing.result == "billing|skipped"


def test_call_step_needs_opt_in(project: Path) -> None:
    (project / "helpers.py").write_text("def shout(ctx, suffix='!'):\n    return ctx['text'].upper() + suffix\n")
    cfg = _with_chains(
        project, {"loud": {"inputs": ["text"], "steps": [{"call": "helpers:shout", "args": {"suffix": "{{ text }}?"}}]}}
    )
    with pytest.raises(ChainStepError) as info:
        ChainRunner(cfg, runtime=FakeRuntime(project)).run("loud", {"text": "hi"})
    assert "--allow-code" in (info.value.hint or "")
    run = ChainRunner(cfg, runtime=FakeRuntime(project), allow_code=True).run("loud", {"text": "hi"})
    assert run.result == "HIhi?"


def test_failing_step_is_named_and_partial_trace_kept(project: Path) -> None:
    cfg = load_config(project, env={})
    with pytest.raises(ChainStepError) as info:
        ChainRunner(cfg, runtime=FakeRuntime(project, fail_retrieve=True)).run("rag-answer", {"question": "q"})
    assert "step 1 (retrieve-1: retrieve kb)" in info.value.message  # 1-based, with the id
    assert "llmops index kb" in (info.value.hint or "")
    saved = json.loads((project / ".llmops/traces/rag-answer.jsonl").read_text().splitlines()[-1])
    assert saved["status"] == "error" and saved["steps"][0]["error"]


def test_strict_templates_name_the_missing_value(project: Path) -> None:
    cfg = _with_chains(project, {"bad": {"steps": [{"transform": "template", "template": "{{ nope }}"}]}})
    with pytest.raises(ChainStepError, match="nope"):
        ChainRunner(cfg, runtime=FakeRuntime(project)).run("bad", {})
