"""``llmops monitor``: windows and percentiles, drift math, feedback, alerts, webhook, continuous eval, CLI.

Requests are synthetic records written with ``MonitorStore.log_many`` into an ``llmops init``
project whose ``eval`` dataset is the sample project's 50 support questions (the reference).
Drifted traffic is long French legal text; in-distribution traffic is drawn from the reference.
Only the embedding-drift test loads MiniLM (marked integration).
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from llmops_cli.errors import UsageError
from llmops_cli.generation import GenerationResult
from llmops_cli.monitor import FeedbackRecord, RequestRecord, open_store
from llmops_cli.monitor.alerts import AlertRule, alert_rules, check_alert_keys, evaluate_alerts, post_webhook
from llmops_cli.monitor.continuous import in_sample
from llmops_cli.monitor.drift import (
    domain_classifier_auc,
    ks_2samp,
    length_drift,
    mmd_rbf,
    null_auc_quantile,
    oov_drift,
    roc_auc,
)
from llmops_cli.monitor.feedback import sentiment, summarize_feedback
from llmops_cli.monitor.ops import OpsRow, ops_stats, outcome
from llmops_cli.monitor.report import MonitorOptions, build_report
from llmops_cli.monitor.windows import (
    TimeWindow,
    choose_bucket,
    format_duration,
    parse_duration,
    parse_time,
    resolve_window,
)
from llmops_cli.validation import load_config
from tests.helpers import SAMPLE_PROJECT

NOW = time.time()
FRENCH = (
    "Conformément aux dispositions de l'article {n} du Code civil, le contrat de bail commercial est résilié de "
    "plein droit en cas de manquement grave du preneur à ses obligations, sous réserve d'une mise en demeure "
    "préalable restée infructueuse pendant un délai d'un mois à compter de sa signification par huissier."
)


# --- fixtures and helpers ----------------------------------------------------------------------


def reference_questions() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLE_PROJECT / "data" / "eval.jsonl").read_text().splitlines() if line]


@pytest.fixture
def monitored(project: Path) -> Path:
    """The init project with the sample's 50 support questions as `eval` and a monitor: section."""
    shutil.copy(SAMPLE_PROJECT / "data" / "eval.jsonl", project / "data" / "eval.jsonl")
    set_monitor(
        project,
        {
            "reference": "eval",
            "window": "24h",
            "drift": ["length", "oov"],
            "alerts": {"latency_ms.p95": "> 2000", "error_rate": "> 0.05", "feedback.negative_rate": "> 0.2"},
        },
    )
    return project


def set_monitor(root: Path, monitor: dict[str, Any], **sections: Any) -> None:
    path = root / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["monitor"] = monitor
    data.update(sections)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def records(
    inputs: list[str], *, start: int = 0, latency: float = 300.0, status: int = 200, age_s: float = 3000.0
) -> list[RequestRecord]:
    rng = random.Random(start)
    return [
        RequestRecord(
            id=f"req-{start + i:06d}",
            ts=NOW - rng.uniform(60, age_s),
            endpoint="/v1/chat/completions",
            status=status,
            model="base@v1",
            input=text,
            output=f"Answer {i}: check the Hearth app settings.",
            latency_ms=latency + rng.uniform(-50, 50),
            prompt_tokens=40,
            completion_tokens=12,
        )
        for i, text in enumerate(inputs)
    ]


def log(root: Path, recs: list[RequestRecord]) -> None:
    with open_store(load_config(root)) as store:
        store.log_many(recs)


def in_distribution(n: int, seed: int = 0) -> list[str]:
    questions = [q["question"] for q in reference_questions()]
    rng = random.Random(seed)
    return [rng.choice(questions) for _ in range(n)]


def drifted(n: int) -> list[str]:
    return [FRENCH.format(n=1000 + i) for i in range(n)]


class Hook:
    """A loopback webhook receiver that keeps every JSON body it gets."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def dead_url() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}/hook"


# --- windows and operational stats -------------------------------------------------------------


def test_durations_and_times() -> None:
    assert parse_duration("90s") == 90 and parse_duration("24h") == 86400 and parse_duration("2w") == 1209600
    assert format_duration(86400) == "1d" and format_duration(5400) == "90m" and format_duration(7) == "7s"
    assert parse_time("2h", now=10_000) == 10_000 - 7200
    assert parse_time("@1700000000", now=0) == 1_700_000_000
    assert parse_time("2024-01-01T00:00:00Z", now=0) == parse_time("2024-01-01T00:00", now=0) == 1704067200
    assert parse_time("now", now=5.0) == 5.0
    for bad in ("yesterday", "-1h", "0m"):
        with pytest.raises(UsageError):
            parse_time(bad, now=0) if bad == "yesterday" else parse_duration(bad)
    window = resolve_window("1h", None, "@7200", now=99_999)
    assert (window.start, window.end) == (3600, 7200)
    with pytest.raises(UsageError, match="empty time window"):
        resolve_window(None, "@10", "@5", now=0)
    assert choose_bucket(86400) == 3600 and choose_bucket(3600) == 300 and choose_bucket(60) == 5


def test_outcomes_count_5xx_429_and_broken_streams_as_errors() -> None:
    assert outcome(200, False) == "ok" and outcome(503, False) == "error" and outcome(429, False) == "error"
    assert outcome(200, True) == "error"  # a stream that failed after its headers
    assert outcome(401, True) == "client_error" and outcome(422, False) == "client_error"


def test_percentiles_rates_throughput_and_buckets() -> None:
    window = TimeWindow(0.0, 3600.0)
    rows = [OpsRow(ts=i * 10.0, endpoint="/v1/chat/completions", status=200, latency_ms=float(i + 1),
                   prompt_tokens=10, completion_tokens=5, error=False) for i in range(100)]  # fmt: skip
    rows += [
        OpsRow(1000.0, "/v1/completions", 500, None, 0, 0, True),
        OpsRow(1001.0, "/v1/models", 401, 1.0, 0, 0, True),
    ]
    stats = ops_stats(rows, window, bucket_seconds=600)
    lat = stats.by_endpoint["/v1/chat/completions"].latency_ms
    # 1..100 ms: numpy's default (linear) percentiles.
    assert lat.p50 == pytest.approx(np.percentile(range(1, 101), 50))
    assert lat.p95 == pytest.approx(np.percentile(range(1, 101), 95))
    assert lat.p99 == pytest.approx(np.percentile(range(1, 101), 99))
    # The 401 is rejected traffic (the gate refused it): counted by status, not in the served figures.
    assert stats.total.requests == 101 and stats.total.errors == 1 and stats.total.client_errors == 0
    assert stats.rejected == {401: 1} and stats.all.requests == 102 and stats.all.client_errors == 1
    assert stats.total.error_rate == pytest.approx(1 / 101)
    assert stats.total.tokens.prompt == 1000 and stats.total.tokens.completion == 500
    # 1-second intervals from the first busy one (t=0) to the last (t=1000): 1001 intervals.
    assert stats.throughput_rps == pytest.approx(101 / 1001)
    assert stats.peak_rps == 1.0  # never more than one served request in a second here
    assert len(stats.series) == 6 and sum(b.stats.requests for b in stats.series) == 101
    assert stats.series[0].stats.requests == 60 and stats.series[1].rejected == 1
    metrics = stats.metrics()
    assert metrics["latency_ms.p95"] == stats.total.latency_ms.p95 and metrics["requests"] == 101
    assert metrics["rejected.401"] == 1 and metrics["all.requests"] == 102
    empty = ops_stats([], window)
    assert empty.total.requests == 0 and empty.throughput_rps is None and empty.metrics()["error_rate"] is None


# --- drift statistics --------------------------------------------------------------------------


def test_ks_statistic_and_pvalue() -> None:
    assert ks_2samp([1, 2, 3], [1, 2, 3]) == (0.0, 1.0)
    d, p = ks_2samp([1, 2, 3, 4, 5] * 10, [10, 11, 12, 13, 14] * 10)
    assert d == 1.0 and p < 1e-6
    assert ks_2samp([1, 1, 2], [1, 2, 2])[0] == pytest.approx(1 / 3)  # ties: F_a(1)=2/3, F_b(1)=1/3
    # D at the asymptotic 5% critical value for n = m = 50 gives p near 0.05 (Stephens' correction moves it a bit).
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    b = np.sort(a) + 0.0
    b[:14] -= 100  # moves 14 of 50 points (D = 0.28) below everything
    d, p = ks_2samp(a, b)
    assert d == pytest.approx(0.28) and 0.02 < p < 0.07


def test_roc_auc_matches_pair_counting() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    rng = np.random.default_rng(1)
    scores, labels = rng.integers(0, 10, 200).astype(float), rng.integers(0, 2, 200)
    pos, neg = scores[labels == 1], scores[labels == 0]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(scores, labels) == pytest.approx(brute)


def test_domain_classifier_separates_shifted_vectors_only() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 32))
    same = domain_classifier_auc(ref, rng.normal(size=(300, 32)), seed=0)
    assert same.auc < null_auc_quantile(200, 300) + 0.03
    shifted = domain_classifier_auc(ref, rng.normal(size=(300, 32)) + 0.6, seed=0)
    assert shifted.auc > 0.95
    again = domain_classifier_auc(ref, rng.normal(size=(300, 32)) + 0.6, seed=0)
    assert abs(again.auc - shifted.auc) < 0.02  # seeded folds: stable from run to run
    small_ref = domain_classifier_auc(ref[:12], rng.normal(size=(400, 32)) + 1.0, seed=3)
    assert small_ref.auc > 0.9  # class weights: a tiny reference is not drowned out


def test_mmd_is_near_zero_without_drift_and_significant_with_it() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(150, 16))
    mmd_same, p_same = mmd_rbf(ref, rng.normal(size=(150, 16)), permutations=200, seed=0)
    mmd_drift, p_drift = mmd_rbf(ref, rng.normal(size=(150, 16)) + 0.5, permutations=200, seed=0)
    assert abs(mmd_same) < 0.01 and p_same > 0.05
    assert mmd_drift > 0.05 and p_drift < 0.01


def test_length_and_oov_drift() -> None:
    ref = ["how do I reset the thermostat", "the app shows an error", "where is the wifi setting"] * 5
    same = length_drift(ref, list(reversed(ref)))
    assert same.value == 0.0 and same.details["statistic"] == "ks"
    assert length_drift(ref, drifted(15)).value == 1.0
    oov = oov_drift(ref, ["reset the app", "Le contrat est résilié"])
    assert oov.value == pytest.approx(4 / 7)  # le, contrat, est, résilié are unknown; reset, the, app known
    assert oov.details["vocabulary"] == 14 and oov.details["reference_split_half"] is not None


# --- feedback and alerts -----------------------------------------------------------------------


def fb(i: int, score: float | None = None, label: str | None = None, comment: str | None = None) -> FeedbackRecord:
    return FeedbackRecord(i, f"req-{i}", NOW + i, score, label, comment)


def test_feedback_sentiment_and_summary() -> None:
    assert sentiment(fb(1, score=-1)) == "negative" and sentiment(fb(1, label="Thumbs-Down")) == "negative"
    assert sentiment(fb(1, score=-1, label="good")) == "positive"  # a known label wins over the score
    assert sentiment(fb(1, score=0)) == "neutral" and sentiment(fb(1, label="meh")) == "neutral"
    summary = summarize_feedback(
        [fb(1, score=1), fb(2, label="bad", comment="wrong model"), fb(3, score=-1, comment="slow"), fb(4, score=0)]
    )
    assert (summary.count, summary.negative, summary.positive) == (4, 2, 1)
    assert summary.negative_rate == 0.5 and summary.mean_score == 0.0
    assert [c["comment"] for c in summary.comments] == ["slow", "wrong model"]  # newest first


def test_alert_rules_fire_when_satisfied_and_never_on_missing_values() -> None:
    rules = alert_rules({"alerts": {"latency_ms.p95": "> 2000", "requests": "< 1"}, "drift": ["length", "embedding"]})
    assert [(r.key, r.source) for r in rules] == [
        ("latency_ms.p95", "monitor.alerts"), ("requests", "monitor.alerts"),
        ("drift.length", "default"), ("drift.embedding", "default"),
    ]  # fmt: skip
    alerts = evaluate_alerts(rules, {"latency_ms.p95": 2500.0, "requests": 3.0, "drift.length": None})
    assert [a.status for a in alerts] == ["FIRING", "ok", "n/a", "n/a"]
    gate = AlertRule("eval.length.mean", ">=", 10.0, source="eval suite s", fire_when=False)
    assert evaluate_alerts([gate], {"eval.length.mean": 4.0})[0].fired
    with pytest.raises(UsageError, match="unknown key 'latency.p95'") as err:
        check_alert_keys(alert_rules({"alerts": {"latency.p95": "> 1"}}), {"latency_ms.p95": 1.0})
    assert "latency_ms.p95" in (err.value.hint or "")
    with pytest.raises(UsageError, match="cannot read"):
        alert_rules({"alerts": {"error_rate": "above 5%"}})


def test_webhook_delivers_json_and_a_dead_one_only_reports(hook: Hook) -> None:
    result = post_webhook(hook.url, {"alerts": [{"key": "error_rate"}]})
    assert result.delivered and result.status == 204 and hook.bodies == [{"alerts": [{"key": "error_rate"}]}]
    dead = post_webhook(dead_url(), {"alerts": []}, timeout=2)
    assert not dead.delivered and dead.error
    assert not post_webhook("file:///etc/passwd", {}).delivered


def test_continuous_sampling_is_deterministic() -> None:
    ids = [f"req-{i}" for i in range(2000)]
    picked = [i for i in ids if in_sample(i, 0.1)]
    assert 150 < len(picked) < 250 and picked == [i for i in ids if in_sample(i, 0.1)]
    assert all(in_sample(i, 1.0) for i in ids[:10]) and not any(in_sample(i, 0.0) for i in ids[:10])


# --- the report and the CLI --------------------------------------------------------------------


def test_report_on_a_missing_store_is_empty_not_an_error(monitored: Path, cli: Any) -> None:
    report = build_report(load_config(monitored), MonitorOptions(embedding=False))
    assert not report.store_exists and report.ops.total.requests == 0 and not report.fired
    assert not (monitored / ".llmops" / "monitor.db").exists()  # reading never creates the store
    result = cli("monitor", "--no-embedding", cwd=monitored)
    assert result.exit_code == 0, result.output
    assert "no requests logged yet" in result.output


def test_drifted_inputs_raise_the_drift_alert_and_exit_5(monitored: Path, cli: Any) -> None:
    log(monitored, records(in_distribution(20)) + records(drifted(180), start=100))
    result = cli("monitor", "--json", cwd=monitored)
    assert result.exit_code == 5, result.output
    data = json.loads(result.stdout)
    fired = {a["key"] for a in data["alerts"] if a["fired"]}
    assert fired == {"drift.length", "drift.oov"}
    assert data["metrics"]["drift.length"] > 0.8 and data["metrics"]["drift.oov"] > 0.8
    assert "2 monitor alerts fired" in result.stderr and "drift.length" in result.stderr


def test_in_distribution_inputs_do_not_alert(monitored: Path, cli: Any) -> None:
    log(monitored, records(in_distribution(200)))
    result = cli("monitor", cwd=monitored)
    assert result.exit_code == 0, result.output
    for text in ("Operations", "Drift vs 'eval'", "drift.length", "Alerts", "Feedback"):
        assert text in result.stdout


def test_json_shape(monitored: Path, cli: Any) -> None:
    log(monitored, records(in_distribution(40)) + records(in_distribution(5), start=500, status=503))
    with open_store(load_config(monitored)) as store:
        store.add_feedback("req-000001", score=-1, comment="wrong thermostat model")
        store.add_feedback("req-000002", label="thumbs_up")
    result = cli("monitor", "--json", "--window", "2h", "--bucket", "10m", cwd=monitored)
    assert result.exit_code == 5  # 5 of 45 failed: error_rate 0.11 > 0.05; negative feedback 0.5 > 0.2
    data = json.loads(result.stdout)
    assert set(data) >= {"project", "window", "operations", "feedback", "drift", "alerts", "fired", "metrics"}
    ops = data["operations"]
    assert ops["requests"] == 45 and ops["errors"] == 5 and ops["bucket"] == "10m" and len(ops["series"]) == 12
    assert set(ops["latency_ms"]) == {"n", "mean", "p50", "p95", "p99", "max"}
    assert ops["tokens"] == {"prompt": 1800, "completion": 540, "prompt_mean": 40.0, "completion_mean": 12.0,
                             "total": 2340}  # fmt: skip
    assert data["feedback"]["count"] == 2 and data["feedback"]["comments"][0]["comment"] == "wrong thermostat model"
    assert {a["key"] for a in data["alerts"] if a["fired"]} == {"error_rate", "feedback.negative_rate"}
    measures = {m["key"]: m for m in data["drift"]["measures"]}
    assert set(measures) == {"drift.length", "drift.oov", "drift.output.length", "drift.output.oov"}
    assert measures["drift.length"]["n_current"] == 45 and measures["drift.output.oov"]["n_current"] == 40


def test_subsampling_caps_each_side_and_is_seeded(monitored: Path) -> None:
    log(monitored, records(in_distribution(3000, seed=1)))
    cfg = load_config(monitored)
    first = build_report(cfg, MonitorOptions(max_samples=200, seed=7))
    again = build_report(cfg, MonitorOptions(max_samples=200, seed=7))
    assert first.drift is not None and again.drift is not None
    length = first.drift.measures[0]
    assert length.n_current == 200 and length.n_reference == 50 and first.drift.inputs == 3000
    assert [m.value for m in first.drift.measures] == [m.value for m in again.drift.measures]


def test_html_report_is_self_contained(monitored: Path, cli: Any, tmp_path: Path) -> None:
    log(monitored, records(in_distribution(30)) + records(drifted(30), start=100))
    out = tmp_path / "report.html"
    result = cli("monitor", "--format", "html", "--output", str(out), cwd=monitored)
    assert result.exit_code == 5, result.output
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "drift.length" in html and "Operations" in html
    assert html.count("data:image/png;base64,") >= 4  # throughput, latency, errors, length histograms
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_webhook_gets_fired_alerts_and_a_dead_one_only_warns(monitored: Path, cli: Any, hook: Hook) -> None:
    log(monitored, records(in_distribution(30), latency=2500.0))
    config = yaml.safe_load((monitored / "llmops.yaml").read_text())["monitor"]
    set_monitor(monitored, {**config, "webhook": hook.url})
    result = cli("monitor", "--no-embedding", cwd=monitored)
    assert result.exit_code == 5
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert [a["key"] for a in body["alerts"]] == ["latency_ms.p95"] and "latency_ms.p95" in body["text"]
    assert cli("monitor", "--no-webhook", cwd=monitored).exit_code == 5 and len(hook.bodies) == 1
    set_monitor(monitored, {**config, "webhook": dead_url()})
    result = cli("monitor", cwd=monitored)
    assert result.exit_code == 5  # still the alert's exit code, not a crash
    assert "webhook" in result.stderr and "not delivered" in result.stderr


def test_alert_typos_and_missing_settings_are_usage_errors(monitored: Path, cli: Any) -> None:
    set_monitor(monitored, {"reference": "eval", "alerts": {"latency.p95": "> 100"}})
    result = cli("monitor", cwd=monitored)
    assert result.exit_code == 2 and "unknown key 'latency.p95'" in result.stderr
    set_monitor(monitored, {"alerts": {"drift.oov": "> 0.5"}})
    assert "monitor.reference is not set" in cli("monitor", cwd=monitored).stderr
    set_monitor(monitored, {"alerts": {"eval.length": "< 10"}})
    assert "continuous_eval is not set" in cli("monitor", cwd=monitored).stderr


def test_a_project_without_monitor_section_gets_operations_only(project: Path, cli: Any) -> None:
    log(project, records(["hello"] * 5, status=500))
    result = cli("monitor", "--json", cwd=project)
    assert result.exit_code == 0  # no rules, no alerts: a report, not a gate
    data = json.loads(result.stdout)
    assert data["operations"]["errors"] == 5 and data["drift"] is None and data["alerts"] == []


class Judge:
    """A judge provider that gives every answer a 2 out of 5."""

    name = "fake-judge"

    def generate(self, requests: list[Any]) -> list[GenerationResult]:
        return [GenerationResult("2", 1, 1, 1.0, "stop", "judge") for _ in requests]


def test_continuous_eval_scores_a_sample_with_reference_free_metrics(monitored: Path) -> None:
    log(monitored, records(in_distribution(60)))
    suite = {
        "target": {"prompt": "answer", "model": "base"},
        "dataset": "eval",
        "metrics": [
            "rougeL",
            "length",
            "latency_ms",
            {"type": "not_contains", "name": "no_canary", "pattern": "SECRET"},
            {"type": "judge", "model": "base"},
        ],  # fmt: skip
        "thresholds": {"rougeL": ">= 0.2", "length": ">= 100", "no_canary": ">= 1.0"},
    }
    set_monitor(
        monitored,
        {"reference": "eval", "sample_rate": 0.5, "continuous_eval": {"suite": "live", "sample": 10, "every": "1h"}},
        evals={"live": suite},
    )
    options = MonitorOptions(drift=False, judge_provider=lambda model: Judge())
    report = build_report(load_config(monitored), options)
    ce = report.continuous
    assert ce is not None and ce.answered == 60 and 15 < ce.eligible < 45 and ce.sampled == 10
    assert ce.metrics == ["length", "latency_ms", "no_canary", "judge"] and "rougeL" in ce.skipped
    assert ce.aggregates["no_canary"]["mean"] == 1.0 and ce.aggregates["judge"]["mean"] == 0.25
    assert {g.key: g.passed for g in ce.gates} == {"length.mean": False, "no_canary.mean": True}
    fired = [a.rule.key for a in report.fired]
    assert fired == ["eval.length.mean"]  # answers are ~40 chars: the suite's length gate fails on traffic
    assert report.metrics()["eval.judge"] == 0.25
    again = build_report(load_config(monitored), options).continuous
    assert again is not None and [c["id"] for c in again.cases] == [c["id"] for c in ce.cases]


def test_watch_redraws_until_ctrl_c(monitored: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    log(monitored, records(in_distribution(20), latency=2500.0))
    calls = {"n": 0}

    def sleep(_seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    result = cli("monitor", "--watch", "--refresh", "1", "--no-embedding", cwd=monitored)
    assert result.exit_code == 0, result.output  # alerts show on the dashboard; Ctrl-C is a normal exit
    assert calls["n"] == 3 and "Operations" in result.stdout and "FIRING" in result.stdout


@pytest.mark.integration
def test_embedding_drift_with_minilm(monitored: Path) -> None:
    config = yaml.safe_load((monitored / "llmops.yaml").read_text())["monitor"]
    set_monitor(monitored, {**config, "drift": ["embedding"], "alerts": {"drift.embedding": "> 0.55"}})
    cfg = load_config(monitored)
    calm_traffic = records(in_distribution(30))  # the last hour
    stormy_traffic = records(drifted(40), start=1000)
    for record in stormy_traffic:
        record.ts -= 7200  # two to three hours ago
    log(monitored, calm_traffic + stormy_traffic)
    calm = build_report(cfg, MonitorOptions(since="1h", continuous_eval=False))
    assert calm.drift is not None and not calm.fired
    assert calm.metrics()["drift.embedding"] < 0.55
    stormy = build_report(cfg, MonitorOptions(since="4h", until="1h", continuous_eval=False))
    assert [a.rule.key for a in stormy.fired] == ["drift.embedding"]
    assert stormy.metrics()["drift.embedding"] > 0.95 and stormy.metrics()["drift.embedding.p"] < 0.05
