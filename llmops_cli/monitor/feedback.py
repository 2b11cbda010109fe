"""Human feedback in a window: how much, how negative, and what people wrote.

A feedback row is negative when its label says so (``bad``, ``negative``, ``thumbs_down``, ...;
case, spaces and dashes ignored) or, with no known label, when its score is below 0 (the
thumbs convention +1 / -1). It is positive when the label says so or the score is above 0. A
score of exactly 0, or an unknown label with no score, is neutral. Rates are over all feedback
rows in the window, neutral ones included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.monitor.records import FeedbackRecord
from llmops_cli.monitor.windows import iso

NEGATIVE_LABELS = frozenset(
    {"bad", "negative", "thumbs_down", "thumbsdown", "down", "dislike", "disliked", "wrong", "incorrect",
     "unhelpful", "not_helpful", "poor", "no", "-1", "0", "reject", "rejected", "false"}
)  # fmt: skip
POSITIVE_LABELS = frozenset(
    {"good", "positive", "thumbs_up", "thumbsup", "up", "like", "liked", "correct", "helpful", "great",
     "yes", "+1", "1", "accept", "accepted", "true"}
)  # fmt: skip
RECENT_COMMENTS = 10


def normalize_label(label: str | None) -> str:
    return "_".join((label or "").strip().lower().replace("-", " ").split())


def sentiment(record: FeedbackRecord) -> str:
    """``negative``, ``positive`` or ``neutral`` (see the module docstring)."""
    label = normalize_label(record.label)
    if label in NEGATIVE_LABELS:
        return "negative"
    if label in POSITIVE_LABELS:
        return "positive"
    if record.score is not None and record.score < 0:
        return "negative"
    if record.score is not None and record.score > 0:
        return "positive"
    return "neutral"


@dataclass
class FeedbackSummary:
    count: int = 0
    negative: int = 0
    positive: int = 0
    mean_score: float | None = None
    labels: dict[str, int] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)  # the most recent, newest first

    @property
    def negative_rate(self) -> float | None:
        return self.negative / self.count if self.count else None

    @property
    def positive_rate(self) -> float | None:
        return self.positive / self.count if self.count else None

    def metrics(self) -> dict[str, float | None]:
        return {
            "feedback.count": float(self.count),
            "feedback.negative": float(self.negative),
            "feedback.negative_rate": self.negative_rate,
            "feedback.positive_rate": self.positive_rate,
            "feedback.mean_score": self.mean_score,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "negative": self.negative,
            "positive": self.positive,
            "negative_rate": self.negative_rate,
            "positive_rate": self.positive_rate,
            "mean_score": self.mean_score,
            "labels": self.labels,
            "comments": self.comments,
        }


def summarize_feedback(records: Sequence[FeedbackRecord], *, recent: int = RECENT_COMMENTS) -> FeedbackSummary:
    kinds = [sentiment(r) for r in records]
    scores = [r.score for r in records if r.score is not None]
    labels: dict[str, int] = {}
    for r in records:
        if r.label:
            labels[r.label] = labels.get(r.label, 0) + 1
    with_comments = [(r, k) for r, k in zip(records, kinds, strict=True) if r.comment and r.comment.strip()]
    comments = [
        {"ts": iso(r.ts), "request_id": r.request_id, "sentiment": k, "score": r.score, "label": r.label,
         "comment": r.comment}
        for r, k in sorted(with_comments, key=lambda rk: (-rk[0].ts, -rk[0].id))[:recent]
    ]  # fmt: skip
    return FeedbackSummary(
        count=len(records),
        negative=kinds.count("negative"),
        positive=kinds.count("positive"),
        mean_score=sum(scores) / len(scores) if scores else None,
        labels=dict(sorted(labels.items(), key=lambda kv: -kv[1])),
        comments=comments,
    )
