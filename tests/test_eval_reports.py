"""Eval output cache, results model, bootstrap comparison and the four report formats."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from llmops_cli.evals.cache import CACHE_RELPATH, CachedOutput, OutputCache
from llmops_cli.evals.compare import _bootstrap_means_python, compare, compare_suites
from llmops_cli.evals.reports import write_reports
from llmops_cli.evals.reports.json_report import load_results
from llmops_cli.evals.results import CaseResult, SuiteResult, Threshold, worst_cases
from llmops_cli.generation import GenerationParams, GenerationResult

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def _gen(text: str = "Paris.") -> GenerationResult:
    return GenerationResult(
        text=text, prompt_tokens=12, completion_tokens=3, latency_ms=42.5, finish_reason="stop", model="m"
    )


# -- cache --------------------------------------------------------------------------------------


def test_cache_put_get_miss(tmp_path: Path) -> None:
    with OutputCache(tmp_path) as cache:
        assert cache.path == tmp_path / CACHE_RELPATH
        key = cache.key("fp1", None, MESSAGES, GenerationParams(), 0)
        assert cache.get(key) is None
        cache.put(key, _gen())
        hit = cache.get(key)
        assert isinstance(hit, CachedOutput)
        assert (hit.text, hit.prompt_tokens, hit.completion_tokens, hit.latency_ms) == ("Paris.", 12, 3, 42.5)
        assert hit.to_generation_result().text == "Paris."
        stats = cache.stats()
        assert stats["entries"] == 1 and stats["hits"] == 1 and stats["misses"] == 1 and stats["bytes"] > 0
        assert cache.clear() == 1
        assert cache.get(key) is None


def test_cache_key_sensitivity() -> None:
    base = OutputCache.key("fp", "lora@v1", MESSAGES, GenerationParams(), 0)
    assert base == OutputCache.key("fp", "lora@v1", list(MESSAGES), {**GenerationParams().as_dict()}, 0)
    variants = {
        OutputCache.key("fp2", "lora@v1", MESSAGES, GenerationParams(), 0),
        OutputCache.key("fp", "lora@v2", MESSAGES, GenerationParams(), 0),
        OutputCache.key("fp", None, MESSAGES, GenerationParams(), 0),
        OutputCache.key("fp", "lora@v1", [{"role": "user", "content": "What is the capital of Spain?"}], None, 0),
        OutputCache.key("fp", "lora@v1", "What is the capital of France?", GenerationParams(), 0),
        OutputCache.key("fp", "lora@v1", MESSAGES, GenerationParams(temperature=0.7), 0),
        OutputCache.key("fp", "lora@v1", MESSAGES, GenerationParams(max_new_tokens=64), 0),
        OutputCache.key("fp", "lora@v1", MESSAGES, GenerationParams(), 1),
    }
    assert base not in variants and len(variants) == 8
    assert re.fullmatch(r"[0-9a-f]{64}", base)


def test_cache_persists_and_batches(tmp_path: Path) -> None:
    keys = [OutputCache.key("fp", None, f"prompt {i}", None, 0) for i in range(1200)]
    with OutputCache(tmp_path) as cache:
        assert cache.put_many((k, _gen(f"out {i}")) for i, k in enumerate(keys)) == 1200
    with OutputCache(tmp_path) as again:
        found = again.get_many([*keys, "missing"])
        assert len(found) == 1200 and found[keys[700]].text == "out 700"
        assert again.stats()["misses"] == 1


def test_cache_failed_batch_leaves_nothing(tmp_path: Path) -> None:
    with OutputCache(tmp_path) as cache:
        bad = CachedOutput(text=None, prompt_tokens=1, completion_tokens=1, latency_ms=1.0, created=0.0)  # type: ignore[arg-type]
        with pytest.raises(Exception, match="NOT NULL"):
            cache.put_many([("a", _gen()), ("b", bad)])
        assert cache.stats()["entries"] == 0  # the whole batch rolled back


def _writer(args: tuple[str, int]) -> int:
    root, worker = args
    with OutputCache(Path(root)) as cache:
        for i in range(40):
            cache.put_many([(f"w{worker}-{i}-{j}", _gen(f"{worker}/{i}/{j}")) for j in range(5)])
            cache.get_many([f"w{1 - worker}-{i}-{j}" for j in range(5)])
    return worker


def test_cache_concurrent_writers(tmp_path: Path) -> None:
    OutputCache(tmp_path).close()  # create the schema once, like a real run would
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        assert sorted(pool.map(_writer, [(str(tmp_path), 0), (str(tmp_path), 1)])) == [0, 1]
    with OutputCache(tmp_path) as cache:
        assert cache.stats()["entries"] == 2 * 40 * 5
        assert cache.get("w1-39-4").text == "1/39/4"  # type: ignore[union-attr]


# -- results model ------------------------------------------------------------------------------


def _suite(*, baseline: bool = False) -> SuiteResult:
    rng = random.Random(1)
    cases = []
    for i in range(12):
        rouge = round(rng.uniform(0.1, 0.9), 3)
        cases.append(
            CaseResult(
                case_id=f"q{i:02d}",
                inputs={"question": f"Question {i} | with a pipe?"},
                prediction=f"answer <b>{i}</b>",
                reference=f"reference {i}",
                scores={"rougeL": rouge, "exact_match": float(i % 3 == 0), "latency_ms": 100.0 + i},
                passed={"rougeL": rouge >= 0.3},
                latency_ms=100.0 + i,
                tokens={"prompt": 10, "completion": 5},
                cached=i % 2 == 0,
            )
        )
    cases.append(CaseResult(case_id="q99", inputs={}, prediction="", error="RuntimeError: boom"))
    rouges = [c.scores["rougeL"] for c in cases if c.scores]
    mean = sum(rouges) / len(rouges)  # type: ignore[arg-type]
    result = SuiteResult(
        suite="faq-quality",
        target={"chain": "rag-answer"},
        dataset_ref="dataset/faq-eval@v2",
        config_hash="c0ffee" * 6,
        versions={"libraries": {"transformers": "5.23"}, "models": {"base": "sha256:abc"}, "git_sha": "deadbeef"},
        started="2026-01-01T00:00:00+00:00",
        seconds=3.5,
        cases=cases,
        aggregates={
            "rougeL": {"mean": mean, "p50": 0.5, "n": 12.0},
            "exact_match": {"mean": 4 / 12, "n": 12.0},
            "latency_ms": {"mean": 105.5, "p95": 110.5, "n": 12.0},
        },
        thresholds=[
            {"key": "rougeL", "op": ">=", "limit": 0.35, "actual": mean, "passed": mean >= 0.35},  # type: ignore[list-item]
            Threshold(key="latency_ms.p95", op="<=", limit=100.0, actual=110.5, passed=False),
        ],
        passed=False,
    )
    if baseline:
        base = SuiteResult.from_dict(result.to_dict())
        for c in base.cases:
            if c.scores.get("rougeL") is not None:
                c.scores["rougeL"] = c.scores["rougeL"] - 0.05  # type: ignore[operator]
        result.baseline = {"ref": "eval/faq-quality/v1", "metrics": compare_suites(result, base, n_boot=200)}
    return result


def test_results_json_round_trip(tmp_path: Path) -> None:
    result = _suite(baseline=True)
    assert isinstance(result.thresholds[0], Threshold)
    again = SuiteResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.to_dict() == result.to_dict()
    assert again.cases[0] == result.cases[0] and again.thresholds == result.thresholds
    write_reports(result, tmp_path, formats=["json"])
    (loaded,) = load_results(tmp_path / "results.json")
    assert loaded.to_dict() == result.to_dict()


def test_worst_cases_order() -> None:
    worst = worst_cases(_suite(), 5)
    assert worst[0].case_id == "q99"  # errors first
    assert all(not c.ok for c in worst[1:3])
    rouges = [c.scores["rougeL"] for c in worst[1:]]
    assert rouges == sorted(rouges)  # type: ignore[type-var]


# -- bootstrap comparison -----------------------------------------------------------------------


def test_bootstrap_ci_contains_true_delta_and_is_deterministic() -> None:
    rng = random.Random(7)
    baseline = {f"c{i}": rng.uniform(0, 1) for i in range(200)}
    current = {cid: v + 0.1 + rng.gauss(0, 0.05) for cid, v in baseline.items()}
    current["only-current"] = 1.0
    current["unscored"] = None  # type: ignore[assignment]
    out = compare(current, baseline, n_boot=1000, seed=3)
    assert out["n_paired"] == 200 and len(out["per_case"]) == 200
    assert out["ci_low"] < 0.1 < out["ci_high"]
    assert out["ci_high"] - out["ci_low"] < 0.05  # paired: tight despite widely spread scores
    assert compare(current, baseline, n_boot=1000, seed=3) == out
    assert compare(current, baseline, n_boot=1000, seed=4)["ci_low"] != out["ci_low"]


def test_bootstrap_pure_python_path_and_empty() -> None:
    deltas = [0.1 + 0.01 * (i % 7) for i in range(50)]
    means = _bootstrap_means_python(deltas, 300, seed=0)
    assert means == _bootstrap_means_python(deltas, 300, seed=0)
    assert min(means) >= 0.1 and max(means) <= 0.16
    empty = compare({"a": 1.0}, {"b": 1.0})
    assert empty["n_paired"] == 0 and empty["ci_low"] != empty["ci_low"]  # NaN


# -- reports ------------------------------------------------------------------------------------


def _junit_counts(path: Path) -> tuple[int, int, int, list[str]]:
    if importlib.util.find_spec("junitparser") is not None:
        from junitparser import Failure, JUnitXml

        xml = JUnitXml.fromfile(str(path))
        suites = list(xml)
        names = [s.name for s in suites]
        cases = [c for s in suites for c in s]
        failures = sum(1 for c in cases for r in c.result if isinstance(r, Failure))
        errors = sum(1 for c in cases for r in c.result if type(r).__name__ == "Error")
        return len(cases), failures, errors, names
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    for suite in suites:
        assert suite.find("properties") is not None
        assert int(suite.get("tests", -1)) == len(suite.findall("testcase"))
        for case in suite.findall("testcase"):
            assert case.get("classname") and case.get("name") and case.get("time") is not None
    cases = root.findall("testsuite/testcase")
    return (
        len(cases),
        len(root.findall("testsuite/testcase/failure")),
        len(root.findall("testsuite/testcase/error")),
        [s.get("name", "") for s in suites],
    )


def test_junit_report(tmp_path: Path) -> None:
    result = _suite()
    write_reports([result], tmp_path, formats=["junit"])
    tests, failures, errors, names = _junit_counts(tmp_path / "junit.xml")
    failing_cases = sum(1 for c in result.cases if c.passed and not c.passed["rougeL"])
    assert names == ["faq-quality"]
    assert tests == 12 + 1 + 2  # one per case assertion, the errored case, two thresholds
    assert failures == failing_cases + 1  # latency threshold fails, rougeL mean passes
    assert errors == 1
    root = ET.parse(tmp_path / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["versions.libraries.transformers"] == "5.23" and props["versions.git_sha"] == "deadbeef"
    gate = root.find("testsuite/testcase[@name='latency_ms.p95']/failure")
    assert gate is not None and "actual 110.5" in gate.get("message", "") and "<= 100" in gate.get("message", "")
    assert root.find("testsuite/testcase[@classname='faq-quality.q03']") is not None


def test_markdown_summary(tmp_path: Path) -> None:
    write_reports(_suite(baseline=True), tmp_path, formats=["markdown"])
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("## ❌ llmops eval FAILED")
    assert "| metric | mean | p50 | p95 | n | threshold | status | Δ vs baseline [95% CI] |" in text
    assert re.search(r"\| `rougeL` \| [0-9.]+ \| 0\.5 \|.*\| ✅ \| \+0\.05 \[", text)
    assert "**latency_ms.p95**: 110.5, expected <= 100" in text
    assert "5 worst cases" in text and "`q99`" in text
    assert "answer &lt;b&gt;" in text and "<b>" not in text  # model output cannot inject HTML


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    paths = write_reports(_suite(baseline=True), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.html", "results.json", "summary.md"]
    html = paths["html"].read_text()
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4  # three metric histograms and the baseline comparison
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "answer &lt;b&gt;3&lt;/b&gt;" in html  # predictions are escaped
    cases = html[html.index("Cases, worst first") :]
    assert cases.index("<code>q99</code>") < cases.index("<code>q03</code>")  # worst first
