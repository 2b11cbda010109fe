"""Reference-overlap metrics: ROUGE (rouge-score) and BLEU / chrF (sacrebleu).

Scores are exactly what those packages compute; we only choose the settings and record them:

- rouge1 / rouge2 / rougeL: rouge-score's F-measure with ``use_stemmer=True`` (Porter stemming,
  as in the original ROUGE ``-m``), range [0, 1]. Several references: the best one counts.
- bleu / chrf: sacrebleu with its defaults, range [0, 100] (sacrebleu's own scale). Per case the
  sentence-level score (``sentence_bleu`` uses effective n-gram order); the headline aggregate is
  the corpus-level score over all cases, and sacrebleu's signature string is kept with it so a
  number can be reproduced with ``sacrebleu -m bleu chrf``.

rouge-score and sacrebleu load inside the functions: rouge-score pulls in nltk (slow to import).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from llmops_cli.errors import require

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
SACREBLEU_METRICS = ("bleu", "chrf")


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    require("rouge_score", extra="eval", purpose="ROUGE metrics", package="rouge-score")
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge_scores(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """rouge1/rouge2/rougeL F-measures of ``prediction``, the best over ``references``."""
    scorer = _rouge_scorer()
    best = dict.fromkeys(ROUGE_TYPES, 0.0)
    for reference in references:
        scores = scorer.score(reference, prediction)  # rouge-score's order: (target, prediction)
        for kind in ROUGE_TYPES:
            best[kind] = max(best[kind], scores[kind].fmeasure)
    return best


def _sacrebleu_metric(kind: str) -> Any:
    require("sacrebleu", extra="eval", purpose="BLEU / chrF metrics")
    from sacrebleu.metrics import BLEU, CHRF

    if kind == "bleu":
        return BLEU()
    if kind == "chrf":
        return CHRF()
    raise ValueError(f"not a sacrebleu metric: {kind}")


@lru_cache(maxsize=2)
def _sentence_metric(kind: str) -> Any:
    if kind == "bleu":
        require("sacrebleu", extra="eval", purpose="BLEU / chrF metrics")
        from sacrebleu.metrics import BLEU

        # What sacrebleu.sentence_bleu does: effective order, so short sentences are not all 0.
        return BLEU(effective_order=True)
    return _sacrebleu_metric(kind)


def sentence_score(kind: str, prediction: str, references: Sequence[str]) -> float:
    """Sentence-level BLEU or chrF of one case (0-100)."""
    return float(_sentence_metric(kind).sentence_score(prediction, list(references)).score)


def corpus_score(kind: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """Corpus-level BLEU or chrF over all cases and sacrebleu's signature string.

    Cases may have different numbers of references: sacrebleu takes ``None`` for a missing one.
    """
    metric = _sacrebleu_metric(kind)
    width = max((len(refs) for refs in references), default=1)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    score = metric.corpus_score(list(predictions), streams)
    return float(score.score), str(metric.get_signature())
