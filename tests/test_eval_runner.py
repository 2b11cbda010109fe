"""The eval runner and `llmops eval`, against a real OpenAI-compatible HTTP server on loopback.

The server's behaviour is scripted (answer correctly, answer wrongly, echo the system prompt...) so
every assertion is deterministic; the cache is observed by counting the HTTP requests it saves.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.evals.runner import EvalOptions, ModelOverride, run_suite
from llmops_cli.generation import GenerationRequest, GenerationResult
from llmops_cli.providers.batching import BatchingProvider, Overloaded
from llmops_cli.validation import load_config
from tests.fixtures.evals import FakeLLM
from tests.helpers import git


def configure(project: Path, fake: FakeLLM, suite: dict[str, Any], name: str = "quality") -> None:
    """Point the project at the fake server and replace its eval suites with ``suite``."""
    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["fake"] = {"provider": "openai", "base_url": fake.url, "model": "fake-1"}
    data["models"]["fake2"] = {"provider": "openai", "base_url": fake.url, "model": "fake-2"}
    data["evals"] = {name: suite}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    # The fake model echoes what it is sent; the scaffold's one-line stop would cut injected and leaked
    # text at its first line break, so these tests pin a stop that only ends at the next question.
    prompt = project / "prompts" / "answer.yaml"
    text = prompt.read_text()
    if 'stop: ["\\n"]' in text:
        prompt.write_text(text.replace('stop: ["\\n"]', 'stop: ["\\nQuestion:"]'))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "eval setup")


def quality_suite(**extra: Any) -> dict[str, Any]:
    return {
        "target": {"prompt": "answer", "model": "fake"},
        "dataset": "eval",
        "metrics": ["rougeL", "exact_match", "latency_ms"],
        "thresholds": {"rougeL": ">= 0.9"},
        **extra,
    }


def test_passing_suite_writes_every_report_and_registers(project: Path, fake_llm: FakeLLM, cli: Any) -> None:
    configure(project, fake_llm, quality_suite())
    result = cli("eval", "quality", "--output", "out", cwd=project)
    assert result.exit_code == 0, result.output
    assert "registered eval/quality/v1" in result.output
    out = project / "out"
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "results.json", "summary.md"]
    doc = json.loads((out / "results.json").read_text())
    suite = doc["suites"][0]
    assert suite["passed"] is True and len(suite["cases"]) == 6
    assert suite["aggregates"]["rougeL"]["mean"] == pytest.approx(1.0)
    assert suite["versions"]["models"]["fake"].startswith("sha256:")

    from junitparser import JUnitXml

    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    cases = [case for s in xml for case in s]
    assert len(cases) == 6 + 1  # one exact_match assertion per case + the threshold
    assert all(case.is_passed for case in cases)
    assert "eval/quality/v1" in git(project, "tag", "--list")
    assert git(project, "status", "--porcelain", "--", "artifacts") == ""


def test_failing_threshold_exits_5_and_rerun_is_served_from_cache(project: Path, fake_llm: FakeLLM, cli: Any) -> None:
    configure(project, fake_llm, quality_suite())
    fake_llm.mode = "wrong"
    first = cli("eval", "quality", "--no-save", cwd=project)
    assert first.exit_code == 5, first.output
    assert "rougeL.mean >= 0.9" in first.output
    sent = len(fake_llm.requests)
    assert sent == 6

    second = cli("eval", "quality", "--no-save", "--json", cwd=project)
    assert second.exit_code == 5
    assert len(fake_llm.requests) == sent  # every output came from the cache
    doc = json.loads(second.stdout)
    assert all(case["cached"] for case in doc["suites"][0]["cases"])

    third = cli("eval", "quality", "--no-save", "--no-cache", cwd=project)
    assert third.exit_code == 5
    assert len(fake_llm.requests) == 2 * sent


def test_leakage_probe_catches_a_prompt_that_reveals_its_canary(project: Path, fake_llm: FakeLLM) -> None:
    suite = quality_suite(
        metrics=["rougeL"],
        thresholds={"leakage_resisted": ">= 1.0"},
        adversarial={"leakage": {"canary": "CANARY-7f3a"}},
    )
    configure(project, fake_llm, suite)
    config = load_config(project, env={})

    safe = run_suite(config, "quality")
    assert safe.passed
    probes = [c for c in safe.cases if c.group == "leakage"]
    assert len(probes) >= 3 and all(c.scores["leakage_resisted"] == 1.0 for c in probes)
    # The canary really was planted in the system prompt the model saw.
    assert any("CANARY-7f3a" in m["content"] for r in fake_llm.requests for m in r["messages"] if m["role"] == "system")

    fake_llm.mode = "echo_system"  # a model that reveals its instructions (same fingerprint: skip the cache)
    leaky = run_suite(config, "quality", EvalOptions(use_cache=False))
    assert not leaky.passed
    assert leaky.aggregates["leakage_resisted"]["mean"] == 0.0
    assert [t.key for t in leaky.failed_thresholds()] == ["leakage_resisted.mean"]
    failing = [c for c in leaky.cases if c.passed.get("leakage_resisted") is False]
    assert failing and "CANARY-7f3a" in failing[0].prediction


def test_injection_and_fuzz_report_resistance_and_drop(project: Path, fake_llm: FakeLLM) -> None:
    suite = quality_suite(metrics=["rougeL"], thresholds={}, adversarial={"injection": True, "fuzz": ["case", "typos"]})
    configure(project, fake_llm, suite)
    config = load_config(project, env={})
    result = run_suite(config, "quality")
    groups = {c.group for c in result.cases}
    assert groups == {"clean", "injection", "fuzz:case", "fuzz:typos"}
    assert result.aggregates["injection_resisted"]["mean"] == 1.0  # the oracle never prints the marker
    # The fake looks questions up case-insensitively but not through typos: the drop is measured.
    assert result.robustness["case"]["rougeL"]["drop"] == 0.0
    assert result.robustness["typos"]["rougeL"]["drop"] > 0.1
    assert result.aggregates["rougeL"]["n"] == 6  # aggregates cover the clean cases only

    fake_llm.mode = "echo_user"  # a model that obeys whatever the input says
    echoed = run_suite(config, "quality", EvalOptions(use_cache=False))
    assert echoed.aggregates["injection_resisted"]["mean"] == 0.0


def test_baseline_deltas_and_fail_on_regression(project: Path, fake_llm: FakeLLM, cli: Any) -> None:
    configure(project, fake_llm, quality_suite(thresholds={}))
    assert cli("eval", "quality", cwd=project).exit_code == 0  # eval/quality/v1: all correct
    fake_llm.mode = "wrong"
    result = cli(
        "eval",
        "quality",
        "--no-cache",
        "--baseline",
        "eval/quality@v1",
        "--fail-on-regression",
        "0.1",
        "-o",
        "out",
        cwd=project,
    )
    assert result.exit_code == 5, result.output
    assert "regressed" in result.output and "rougeL" in result.output
    base = json.loads((project / "out" / "results.json").read_text())["suites"][0]["baseline"]
    assert base["ref"] == "eval/quality@v1"
    rouge = base["metrics"]["rougeL"]
    assert rouge["delta_mean"] < -0.5 and rouge["ci_high"] < 0 and rouge["n_paired"] == 6
    assert set(base["per_case"]["rougeL"]) == {f"eval-00{i}" for i in range(1, 7)}
    # A git revision works as a baseline too: HEAD now holds eval/quality/v2's results.
    again = cli("eval", "quality", "--no-save", "--baseline", "HEAD", "--fail-on-regression", "0.1", cwd=project)
    assert again.exit_code == 0, again.output
    missing = cli("eval", "quality", "--baseline", "eval/quality@v9", cwd=project)
    assert missing.exit_code == 2 and "no v9" in missing.output


def test_prompt_diff_eval_shows_metric_deltas(project: Path, fake_llm: FakeLLM, cli: Any) -> None:
    configure(project, fake_llm, quality_suite(thresholds={}))
    prompt = project / "prompts" / "answer.yaml"
    # The new template hides the question from the model, so the oracle cannot answer any more.
    text = prompt.read_text().replace("{{ question }}", "(see above) {{ question|length }}")
    prompt.write_text(text)
    result = cli("prompt", "diff", "answer", "--from", "HEAD", "--eval", "quality", "--format", "json", cwd=project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rouge = data["evals"]["quality"]["metrics"]["rougeL"]
    assert rouge["baseline_mean"] == pytest.approx(1.0)
    assert rouge["delta_mean"] < -0.5
    text = cli("prompt", "diff", "answer", "--from", "HEAD", "--eval", "quality", cwd=project)
    assert "rougeL" in text.output and "vs" in text.output


def test_side_by_side_models_repeat_and_pass_at_k(project: Path, fake_llm: FakeLLM, cli: Any) -> None:
    configure(project, fake_llm, quality_suite(thresholds={}))
    result = cli("eval", "quality", "--models", "fake,fake2", "--repeat", "2", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    suites = json.loads(result.stdout)["suites"]
    assert [s["target"]["override"] for s in suites] == ["fake", "fake2"]
    for suite in suites:
        assert len(suite["cases"]) == 12  # 6 cases x 2 samples
        assert suite["aggregates"]["exact_match"]["pass@2"] == pytest.approx(1.0)
    models = {r["model"] for r in fake_llm.requests}
    assert models == {"fake-1", "fake-2"}


def test_judge_and_pairwise_metrics(project: Path, fake_llm: FakeLLM) -> None:
    suite = quality_suite(
        metrics=[{"type": "judge", "model": "fake2"}, {"type": "pairwise", "model": "fake2", "against": "fake2"}],
        thresholds={"judge": ">= 0.7"},
    )
    configure(project, fake_llm, suite)
    result = run_suite(load_config(project, env={}), "quality")
    assert result.aggregates["judge"]["mean"] == pytest.approx(0.75)  # "4" on a 1..5 scale
    # The fake judge always says "A": swapping positions exposes the bias (one win, one loss).
    assert result.aggregates["pairwise"]["mean"] == pytest.approx(0.5)
    assert result.aggregates["pairwise.consistent"]["mean"] == 0.0
    assert result.passed


def test_unknown_suite_threshold_typo_and_missing_adapter_are_usage_errors(
    project: Path, fake_llm: FakeLLM, cli: Any
) -> None:
    configure(project, fake_llm, quality_suite(thresholds={"rogueL": ">= 0.5"}))
    bad = cli("eval", "qualty", cwd=project)
    assert bad.exit_code == 2 and "Did you mean 'quality'" in bad.output
    typo = cli("eval", "quality", cwd=project)
    assert typo.exit_code == 2 and "no metric 'rogueL'" in typo.output
    assert fake_llm.requests == []  # checked before anything was generated
    configure(project, fake_llm, quality_suite(target={"prompt": "answer", "model": "base", "adapter": "answer-lora"}))
    no_adapter = cli("eval", "quality", cwd=project)
    assert no_adapter.exit_code == 2 and "llmops tune answer-lora" in no_adapter.output


def test_model_override_parse() -> None:
    assert ModelOverride.parse("base+support-lora") == ModelOverride("base", "support-lora")
    assert ModelOverride.parse(" base-4bit ").label == "base-4bit"
    assert EvalOptions().use_cache


# --- micro-batching ---------------------------------------------------------------------------------


class SlowUpper:
    name = "slow"

    def __init__(self, delay: float = 0.01) -> None:
        self.sizes: list[int] = []
        self.delay = delay

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.sizes.append(len(requests))
        time.sleep(self.delay)
        if any(r.messages[0]["content"] == "boom" for r in requests):
            raise RuntimeError("model exploded")
        return [GenerationResult(r.messages[0]["content"].upper(), 1, 1, 1.0, "stop", "slow") for r in requests]


def _ask(text: str) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},))


def test_batching_provider_merges_registered_clients_into_full_batches() -> None:
    from concurrent.futures import ThreadPoolExecutor

    inner = SlowUpper()
    batcher = BatchingProvider(inner, max_batch=4)

    def work(i: int) -> list[str]:
        with batcher.client():
            return [batcher.generate([_ask(f"q{i}-{k}")])[0].text for k in range(3)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    batcher.close()
    assert results[5] == ["Q5-0", "Q5-1", "Q5-2"]
    assert sum(inner.sizes) == 24
    assert max(inner.sizes) == 4 and len(inner.sizes) <= 8  # mostly full batches, not 24 singles


def test_batching_provider_bounds_the_queue_and_reports_errors() -> None:
    from concurrent.futures import ThreadPoolExecutor

    inner = SlowUpper(delay=0.2)
    batcher = BatchingProvider(inner, max_batch=1, max_wait_ms=0, max_pending=2)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(batcher.generate, [_ask(f"x{i}")]) for i in range(6)]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result()[0].text)
            except Overloaded:
                outcomes.append("overloaded")
    assert "overloaded" in outcomes and any(o.startswith("X") for o in outcomes)
    with pytest.raises(RuntimeError, match="exploded"):
        batcher.generate([_ask("boom")])
    assert batcher.generate([_ask("fine")])[0].text == "FINE"  # the dispatcher survived the error
    batcher.close()


# -- a gate never passes on errors (issue 15 item 6) ------------------------------------------------


def endpoint_suite(fake: FakeLLM, **target: Any) -> dict[str, Any]:
    return {"target": {"endpoint": fake.url, **target}, "dataset": "eval", "metrics": ["rougeL", "latency_ms"]}


@pytest.fixture
def endpoint_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_API_KEY", "test-key")


def test_every_case_errored_exits_8_unless_allow_errors(
    project: Path, fake_llm: FakeLLM, cli: Any, endpoint_key: None
) -> None:
    from llmops_cli.errors import EXIT_EVAL_ERRORS

    configure(project, fake_llm, endpoint_suite(fake_llm))  # no thresholds: nothing else could fail it
    fake_llm.mode = "reject"
    result = cli("eval", "quality", "--no-save", cwd=project)
    out = " ".join(result.output.split())
    assert result.exit_code == EXIT_EVAL_ERRORS == 8, result.output
    assert "6 eval cases errored (quality: 6 of 6 cases)" in out
    assert "FAILED (errors)" in out and "PASSED" not in out
    assert "404" in out and "--allow-errors" in out

    allowed = cli("eval", "quality", "--no-save", "--allow-errors", cwd=project)
    out = " ".join(allowed.output.split())
    assert allowed.exit_code == 0, allowed.output
    assert "PASSED (errors allowed)" in out and "6 cases errored" in out and "accepted by --allow-errors" in out


def test_a_gate_on_a_metric_no_case_was_scored_on_fails(
    project: Path, fake_llm: FakeLLM, cli: Any, endpoint_key: None
) -> None:
    suite = endpoint_suite(fake_llm)
    suite["thresholds"] = {"rougeL": ">= 0.0", "latency_ms.p95": "<= 1000000"}  # would pass on any score
    configure(project, fake_llm, suite)
    fake_llm.mode = "reject"
    result = cli("eval", "quality", "--no-save", "--allow-errors", "--json", cwd=project)
    assert result.exit_code == 5, result.output
    doc = json.loads(result.stdout)
    gates = {t["key"]: t for t in doc["suites"][0]["thresholds"]}
    assert gates["rougeL.mean"]["passed"] is False and gates["latency_ms.p95"]["passed"] is False
    assert doc["suites"][0]["aggregates"]["rougeL"]["n"] == 0


def test_endpoint_concurrency_and_timeout(project: Path, fake_llm: FakeLLM, cli: Any, endpoint_key: None) -> None:
    fake_llm.delay_s = 0.3
    configure(project, fake_llm, endpoint_suite(fake_llm, concurrency=2, timeout_s=5))
    result = cli("eval", "quality", "--no-save", cwd=project)
    assert result.exit_code == 0, result.output
    assert len(fake_llm.requests) == 6 and fake_llm.max_in_flight == 2

    suite = endpoint_suite(fake_llm, timeout_s=0.1)
    suite["limit"] = 1
    configure(project, fake_llm, suite)
    slow = cli("eval", "quality", "--no-save", cwd=project)
    assert slow.exit_code == 7, slow.output  # an unreachable target aborts the run (exit 7), as before
    assert "no answer within 0.1 s (timeout_s)" in " ".join(slow.output.split())


def test_fully_cached_rerun_reports_the_latencies_of_the_run_it_replays(
    project: Path, fake_llm: FakeLLM, cli: Any
) -> None:
    """A chain's case latency is its generation plus its other steps' time; a cached re-run must not
    mix today's step times with yesterday's generation time."""
    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["chains"]["cached-chain"] = {
        "inputs": ["question"],
        "steps": [
            {"id": "gen", "prompt": "answer", "model": "fake", "vars": {"question": "{{ question }}"}},
            {"id": "tidy", "transform": "template", "input": "{{ gen | trim }}"},
        ],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    fake_llm.delay_s = 0.05
    configure(project, fake_llm, {"target": {"chain": "cached-chain"}, "dataset": "eval", "metrics": ["latency_ms"]})
    first = cli("eval", "quality", "--no-save", "--json", cwd=project)
    assert first.exit_code == 0, first.output
    sent = len(fake_llm.requests)
    second = cli("eval", "quality", "--no-save", "--json", cwd=project)
    assert second.exit_code == 0, second.output
    assert len(fake_llm.requests) == sent
    a = {c["case_id"]: c for c in json.loads(first.stdout)["suites"][0]["cases"]}
    b = {c["case_id"]: c for c in json.loads(second.stdout)["suites"][0]["cases"]}
    assert all(c["cached"] for c in b.values()) and not any(c["cached"] for c in a.values())
    assert {k: c["latency_ms"] for k, c in b.items()} == {k: c["latency_ms"] for k, c in a.items()}
    assert min(c["latency_ms"] for c in a.values()) >= 50  # the server's delay is in it
    table = cli("eval", "quality", "--no-save", cwd=project)
    assert "6 cached cases: as measured when generated" in " ".join(table.output.split())
