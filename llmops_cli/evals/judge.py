"""Model-graded metrics: ``judge`` (a rubric score) and ``pairwise`` (which of two answers is better).

The judge is any provider (a local model or an OpenAI-compatible one); its calls go through the
eval output cache like every other generation, so re-running a suite does not re-judge.

* ``judge``: the judge reads the question, the reference (when there is one), the answer and the
  rubric, and replies with a score from 1 to 5; we report ``(score - 1) / 4`` in [0, 1] and None
  when the reply holds no score.
* ``pairwise``: our answer against the ``against`` target's answer for the same case, asked twice
  with the positions swapped, because judges favour one position; win 1, tie 0.5, loss 0, and the
  two orders averaged. ``<name>.consistent`` is 1.0 when both orders agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from llmops_cli.evals.metrics import CaseInput, Metric, MetricSpec, Scores
from llmops_cli.generation import GenerationParams, GenerationRequest, Provider

DEFAULT_RUBRIC = (
    "Score how well the answer responds to the question: correct, grounded in the reference when one "
    "is given, complete and concise. 5 = fully correct and helpful, 3 = partly correct, 1 = wrong or off-topic."
)
JUDGE_PARAMS = GenerationParams(temperature=0.0, max_new_tokens=16)
_SCORE = re.compile(r"\b([1-5])\b")
_CHOICE = re.compile(r"\b(A|B|tie|TIE|Tie)\b")


def _question(item: CaseInput) -> str:
    case = item.case
    for key in ("question", "instruction", "input", "text"):
        if case.get(key):
            return str(case[key])
    return ""


class JudgeMetric(Metric):
    kind = "judge"

    def __init__(self, spec: MetricSpec, provider: Provider) -> None:
        super().__init__(spec)
        self.provider = provider
        self.rubric = spec.rubric or DEFAULT_RUBRIC

    def request(self, item: CaseInput) -> GenerationRequest:
        reference = f"\nReference answer: {item.references[0]}" if item.references else ""
        user = (
            f"Rubric: {self.rubric}\n\nQuestion: {_question(item)}{reference}\nAnswer to grade: {self.text(item)}\n\n"
            "Reply with a single digit from 1 to 5."
        )
        system = "You are a strict, fair grader of answers. You reply with only a score from 1 to 5."
        return GenerationRequest(
            ({"role": "system", "content": system}, {"role": "user", "content": user}), JUDGE_PARAMS
        )

    def score(self, item: CaseInput) -> Scores:
        return self.score_batch([item])[0]

    def score_batch(self, items: Sequence[CaseInput]) -> list[Scores]:
        results = self.provider.generate([self.request(item) for item in items])
        return [{self.name: parse_score(r.text)} for r in results]


def parse_score(text: str) -> float | None:
    match = _SCORE.search(text)
    return None if match is None else (int(match.group(1)) - 1) / 4


def parse_choice(text: str) -> str | None:
    match = _CHOICE.search(text)
    return None if match is None else match.group(1).upper().replace("TIE", "tie")


class PairwiseMetric(Metric):
    """Ours vs ``against``; ``others`` maps case id -> the other target's answer (set by the runner)."""

    kind = "pairwise"

    def __init__(self, spec: MetricSpec, provider: Provider) -> None:
        super().__init__(spec)
        self.provider = provider
        self.rubric = spec.rubric or DEFAULT_RUBRIC
        self.others: Mapping[str, str] = {}

    def keys(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}.consistent")

    def request(self, item: CaseInput, first: str, second: str) -> GenerationRequest:
        user = (
            f"Criteria: {self.rubric}\n\nQuestion: {_question(item)}\n\nAnswer A: {first}\n\nAnswer B: {second}\n\n"
            "Which answer is better? Reply with exactly one of: A, B, tie."
        )
        system = "You compare two answers impartially. Position does not matter. Reply with A, B or tie."
        return GenerationRequest(
            ({"role": "system", "content": system}, {"role": "user", "content": user}), JUDGE_PARAMS
        )

    def score(self, item: CaseInput) -> Scores:
        return self.score_batch([item])[0]

    def score_batch(self, items: Sequence[CaseInput]) -> list[Scores]:
        pairs = [(i, self.text(item), self.others.get(str(item.case.get("id")))) for i, item in enumerate(items)]
        todo = [(i, ours, theirs) for i, ours, theirs in pairs if theirs is not None]
        requests: list[GenerationRequest] = []
        for i, ours, theirs in todo:
            requests.append(self.request(items[i], ours, theirs))  # ours in position A
            requests.append(self.request(items[i], theirs, ours))  # ours in position B
        results = self.provider.generate(requests)
        out: list[Scores] = [{self.name: None, f"{self.name}.consistent": None} for _ in items]
        for n, (i, _, _) in enumerate(todo):
            as_a, as_b = parse_choice(results[2 * n].text), parse_choice(results[2 * n + 1].text)
            win_a = {"A": 1.0, "B": 0.0, "tie": 0.5}.get(as_a or "")
            win_b = {"B": 1.0, "A": 0.0, "tie": 0.5}.get(as_b or "")
            known = [w for w in (win_a, win_b) if w is not None]
            out[i] = {
                self.name: sum(known) / len(known) if known else None,
                f"{self.name}.consistent": None if len(known) < 2 else float(win_a == win_b),
            }
        return out


def judge_metric_factory(provider_for: Callable[[str], Provider], default_model: str | None) -> Callable[..., Metric]:
    """``build_metric``'s hook for judge / pairwise: ``provider_for(model name)`` gives the judge."""
    from llmops_cli.errors import UsageError

    def make(spec: MetricSpec) -> Metric:
        model = spec.model or default_model
        if not model:
            raise UsageError(
                f"metric {spec.name}: no judge model",
                hint="Set `model:` on the metric or `judge: {model: ...}` on the suite.",
            )
        if spec.type == "pairwise":
            if not spec.against:
                raise UsageError(
                    f"metric {spec.name}: pairwise needs `against:` (a chain, prompt, model or quantized name)"
                )
            return PairwiseMetric(spec, provider_for(model))
        return JudgeMetric(spec, provider_for(model))

    return make


__all__ = ["DEFAULT_RUBRIC", "JudgeMetric", "PairwiseMetric", "judge_metric_factory", "parse_choice", "parse_score"]
