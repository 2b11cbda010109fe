"""Eval metrics: exact values against rouge-score / sacrebleu, the simple checks, aggregates,
pass@k and threshold gates."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import pytest

from llmops_cli.errors import UsageError
from llmops_cli.evals import (
    CaseInput,
    MetricSpec,
    aggregate,
    aggregate_scores,
    build_metrics,
    check_thresholds,
    mean_pass_at_k,
    normalize_text,
    parse_threshold,
    pass_at_k,
    score_cases,
)
from llmops_cli.generation import GenerationResult

PAIRS = [
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("Press and hold the button for ten seconds.", "Hold the button for 10 seconds to reset."),
    ("Paris is the capital of France.", "The capital of France is Paris."),
]


def run(metrics: list, items: list[CaseInput], **kwargs):
    built = build_metrics([MetricSpec.parse(m) for m in metrics], **kwargs)
    per_case = score_cases(built, items)
    return per_case, aggregate_scores(built, per_case, items)


def items_from(pairs=PAIRS) -> list[CaseInput]:
    return [CaseInput(prediction=p, references=[r]) for p, r in pairs]


def test_spec_parse_string_object_and_custom() -> None:
    assert MetricSpec.parse("rougeL") == MetricSpec(type="rougeL", name="rougeL")
    spec = MetricSpec.parse({"type": "regex", "pattern": r"\[\d+\]", "name": "cites"})
    assert (spec.type, spec.name, spec.pattern) == ("regex", "cites", r"\[\d+\]")
    custom = MetricSpec.parse("myproject.metrics:politeness")
    assert (custom.type, custom.name, custom.function) == ("custom", "politeness", "myproject.metrics:politeness")
    with pytest.raises(UsageError, match="unknown keys bogus"):
        MetricSpec.parse({"type": "rougeL", "bogus": 1})
    with pytest.raises(UsageError, match="unknown metric"):
        build_metrics([MetricSpec.parse("rouge9")])
    with pytest.raises(UsageError, match="needs a judge model"):
        build_metrics([MetricSpec.parse("judge")])


def test_rouge_matches_rouge_score() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    per_case, agg = run(["rouge1", "rouge2", "rougeL"], items_from())
    for row, (pred, ref) in zip(per_case, PAIRS, strict=True):
        expected = scorer.score(ref, pred)
        for kind in ("rouge1", "rouge2", "rougeL"):
            assert row[kind] == pytest.approx(expected[kind].fmeasure, abs=1e-12)
    assert agg["rougeL"]["mean"] == pytest.approx(statistics.mean(r["rougeL"] for r in per_case))
    # Same words in another order: every unigram matches.
    assert per_case[2]["rouge1"] == pytest.approx(1.0)


def test_rouge_best_of_several_references() -> None:
    per_case, _ = run(["rouge1"], [CaseInput("blue sky", ["red car", "blue sky"])])
    assert per_case[0]["rouge1"] == pytest.approx(1.0)


def test_bleu_chrf_sentence_and_corpus_match_sacrebleu() -> None:
    import sacrebleu
    from sacrebleu.metrics import BLEU, CHRF

    per_case, agg = run(["bleu", "chrf"], items_from())
    for row, (pred, ref) in zip(per_case, PAIRS, strict=True):
        assert row["bleu"] == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score, abs=1e-9)
        assert row["chrf"] == pytest.approx(sacrebleu.sentence_chrf(pred, [ref]).score, abs=1e-9)
    preds, refs = [p for p, _ in PAIRS], [[r for _, r in PAIRS]]
    assert agg["bleu"]["corpus"] == pytest.approx(BLEU().corpus_score(preds, refs).score, abs=1e-9)
    assert agg["chrf"]["corpus"] == pytest.approx(CHRF().corpus_score(preds, refs).score, abs=1e-9)
    assert agg["bleu"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert agg["chrf"]["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
    assert agg["bleu"]["n"] == 3


def test_reference_metrics_skip_cases_without_reference() -> None:
    items = [CaseInput("a b c d e", ["a b c d e"]), CaseInput("x", [])]
    per_case, agg = run(["bleu", "rougeL", "exact_match"], items)
    assert per_case[1] == {"bleu": None, "rougeL": None, "exact_match": None}
    assert agg["exact_match"]["n"] == 1 and agg["bleu"]["corpus"] == pytest.approx(100.0)


def test_exact_match_normalization() -> None:
    assert normalize_text("  Paris.  ") == "paris"
    assert normalize_text("New   York\tCity!?") == "new york city"
    items = [
        CaseInput(" PARIS. ", ["Paris"]),
        CaseInput("new  york", ["New York!"]),
        CaseInput("Paris, France", ["Paris"]),
        CaseInput("4", ["four", "4"]),
    ]
    per_case, agg = run(["exact_match"], items)
    assert [r["exact_match"] for r in per_case] == [1.0, 1.0, 0.0, 1.0]
    assert agg["exact_match"]["mean"] == pytest.approx(0.75)


def test_contains_not_contains_regex() -> None:
    items = [CaseInput("See [1]: Paris is big.", ["Paris"]), CaseInput("I think it's paris", ["Paris"])]
    metrics = [
        "contains",
        {"type": "contains", "pattern": "big", "name": "says_big"},
        {"type": "not_contains", "pattern": "I think", "name": "no_hedge"},
        {"type": "regex", "pattern": r"\[\d+\]", "name": "cites"},
    ]
    per_case, _ = run(metrics, items)
    assert per_case[0] == {"contains": 1.0, "says_big": 1.0, "no_hedge": 1.0, "cites": 1.0}
    assert per_case[1] == {"contains": 0.0, "says_big": 0.0, "no_hedge": 0.0, "cites": 0.0}
    with pytest.raises(UsageError, match="needs a 'pattern'"):
        build_metrics([MetricSpec.parse("regex")])
    with pytest.raises(UsageError, match="invalid regular expression"):
        build_metrics([MetricSpec.parse({"type": "regex", "pattern": "(["})])


def test_json_valid_and_schema(tmp_path: Path) -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
    (tmp_path / "answer.json").write_text('{"type": "object", "required": ["answer"]}')
    items = [CaseInput('{"answer": "yes"}'), CaseInput('{"answer": 3}'), CaseInput("not json"), CaseInput('"x"')]
    metrics = [
        "json_valid",
        {"type": "json_schema", "schema": schema},
        {"type": "json_schema", "schema": "answer.json", "name": "from_file"},
    ]
    per_case, _ = run(metrics, items, root=tmp_path)
    assert [r["json_valid"] for r in per_case] == [1.0, 1.0, 0.0, 1.0]
    assert [r["json_schema"] for r in per_case] == [1.0, 0.0, 0.0, 0.0]
    assert [r["from_file"] for r in per_case] == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(UsageError, match="cannot read JSON Schema"):
        build_metrics([MetricSpec.parse({"type": "json_schema", "schema": "missing.json"})], root=tmp_path)
    with pytest.raises(UsageError, match="invalid JSON Schema"):
        build_metrics([MetricSpec.parse({"type": "json_schema", "schema": {"type": 5}})])


def test_field_reads_part_of_a_structured_output() -> None:
    items = [CaseInput({"answer": "Paris.", "context": "x"}, ["paris"]), CaseInput('{"answer": "Rome"}', ["paris"])]
    per_case, _ = run([{"type": "exact_match", "field": "answer"}], items)
    assert [r["exact_match"] for r in per_case] == [1.0, 0.0]


def test_length_latency_tokens_from_generation() -> None:
    gens = [
        GenerationResult("two words", 10, 2, 100.0, "stop", "m"),
        {"latency_ms": 300.0, "prompt_tokens": 12, "completion_tokens": 4},
        None,
    ]
    items = [CaseInput("two words", [], generation=g) for g in gens]
    per_case, agg = run(["length", "latency_ms", "tokens"], items)
    assert per_case[0] == {
        "length": 9.0,
        "length.words": 2.0,
        "latency_ms": 100.0,
        "tokens": 12.0,
        "tokens.prompt": 10.0,
        "tokens.completion": 2.0,
    }
    assert per_case[2]["latency_ms"] is None and per_case[2]["tokens"] is None
    assert agg["latency_ms"]["n"] == 2
    assert agg["latency_ms"]["p50"] == pytest.approx(200.0)
    assert agg["latency_ms"]["p95"] == pytest.approx(290.0)
    assert agg["tokens.completion"]["mean"] == pytest.approx(3.0)


def test_aggregate_stats_and_percentiles() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0, None]
    agg = aggregate(values)
    data = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert agg["n"] == 5 and agg["mean"] == pytest.approx(4.0)
    assert agg["stderr"] == pytest.approx(statistics.stdev(data) / math.sqrt(5))
    assert (agg["min"], agg["max"], agg["p50"]) == (1.0, 10.0, 3.0)
    assert agg["p95"] == pytest.approx(4.0 + 0.8 * 6.0)  # rank 3.8 between 4 and 10
    assert aggregate([5.0])["stderr"] is None
    assert aggregate([None])["mean"] is None and aggregate([])["n"] == 0


def test_pass_at_k_matches_the_closed_form() -> None:
    for n, c, k in [(10, 3, 1), (10, 3, 5), (20, 0, 4), (5, 5, 2), (7, 2, 6)]:
        expected = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    assert mean_pass_at_k([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, None, 0.0], [0.0]], k=2) == pytest.approx(
        ((1 - math.comb(3, 2) / math.comb(4, 2)) + (1 - math.comb(1, 2) / math.comb(3, 2))) / 2
    )


def test_threshold_parsing() -> None:
    assert parse_threshold("rougeL", ">= 0.35").op == ">="
    assert parse_threshold("x", "<=2000").limit == 2000.0
    assert parse_threshold("x", " == -1e-3 ").limit == pytest.approx(-0.001)
    for bad in ["0.3", "=> 0.3", ">= abc", ">= 0.3 and more", "≥ 1"]:
        with pytest.raises(UsageError, match="cannot read"):
            parse_threshold("x", bad)


def test_check_thresholds() -> None:
    items = [
        CaseInput(p, [r], generation={"latency_ms": ms}) for (p, r), ms in zip(PAIRS, [100, 200, 3000], strict=True)
    ]
    _, agg = run(["rougeL", "bleu", "latency_ms", "exact_match", "length"], items)
    results = check_thresholds(
        agg,
        {
            "rougeL": ">= 0.3",
            "latency_ms.p95": "<= 2000",
            "bleu": "> 0",
            "exact_match.mean": "== 0",
            "length.words.max": "< 100",
        },
    )
    by_key = {r.key: r for r in results}
    assert set(by_key) == {"rougeL.mean", "latency_ms.p95", "bleu.corpus", "exact_match.mean", "length.words.max"}
    assert by_key["rougeL.mean"].actual == pytest.approx(agg["rougeL"]["mean"])
    assert by_key["latency_ms.p95"].passed is False and by_key["latency_ms.p95"].actual == pytest.approx(2720.0)
    assert by_key["bleu.corpus"].passed and by_key["exact_match.mean"].passed and by_key["length.words.max"].passed
    with pytest.raises(UsageError, match="no metric 'rouge1'") as err:
        check_thresholds(agg, {"rouge1": ">= 0.1"})
    assert "rougeL" in (err.value.hint or "") and "latency_ms" in (err.value.hint or "")
    with pytest.raises(UsageError, match="unknown statistic 'p99'"):
        check_thresholds(agg, {"latency_ms.p99": "<= 1"})


def test_threshold_on_a_metric_with_no_values_fails() -> None:
    _, agg = run(["latency_ms"], [CaseInput("x")])
    [result] = check_thresholds(agg, {"latency_ms.p95": "<= 2000"})
    assert result.actual is None and result.passed is False


def test_custom_metric_needs_allow_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proj_metrics_mod.py").write_text(
        "def polite(prediction, reference, case):\n"
        "    return 'please' in prediction\n"
        "def detail(prediction, reference, case):\n"
        "    return {'score': len(prediction) / 10, 'has_ref': reference is not None, 'id': case.get('id') == 'a'}\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "proj_metrics_mod", raising=False)
    specs = ["proj_metrics_mod:polite", {"type": "proj_metrics_mod:detail", "name": "detail"}]
    with pytest.raises(UsageError, match="runs project code") as err:
        run(specs, [CaseInput("x")], root=tmp_path)
    assert "--allow-code" in (err.value.hint or "")
    items = [CaseInput("yes please", ["r"], case={"id": "a"}), CaseInput("no", [], case={"id": "b"})]
    per_case, agg = run(specs, items, root=tmp_path, allow_code=True)
    assert per_case[0] == {"polite": 1.0, "detail": 1.0, "detail.has_ref": 1.0, "detail.id": 1.0}
    assert per_case[1] == {"polite": 0.0, "detail": 0.2, "detail.has_ref": 0.0, "detail.id": 0.0}
    assert agg["detail.has_ref"]["mean"] == pytest.approx(0.5)
    with pytest.raises(UsageError, match="cannot import"):
        run(["proj_metrics_mod:nope"], items, root=tmp_path, allow_code=True)


class FakeEmbedder:
    """Bag-of-letters vectors: similar strings get similar vectors, deterministic and instant."""

    fingerprint = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts, *, on_batch=None):
        self.calls += 1
        return [[float(t.lower().count(ch)) for ch in "abcdefghijklmnopqrstuvwxyz"] for t in texts]


def test_similarity_with_injected_embedder() -> None:
    embedder = FakeEmbedder()
    items = [CaseInput("abc", ["abc"]), CaseInput("aab", ["b"]), CaseInput("x", [])]
    per_case, agg = run(["similarity"], items, embedder=embedder)
    assert per_case[0]["similarity"] == pytest.approx(1.0)
    assert per_case[1]["similarity"] == pytest.approx(1 / math.sqrt(5))  # (2,1)·(0,1) / (√5 · 1)
    assert per_case[2]["similarity"] is None
    assert embedder.calls == 1 and agg["similarity"]["n"] == 2
    with pytest.raises(UsageError, match="needs the project config or an embedder"):
        build_metrics([MetricSpec.parse("similarity")])


def test_duplicate_result_names_are_rejected() -> None:
    with pytest.raises(UsageError, match="two metrics report 'contains'"):
        build_metrics([MetricSpec.parse("contains"), MetricSpec.parse({"type": "contains", "pattern": "x"})])
