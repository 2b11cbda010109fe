"""Exploratory statistics of a dataset: lengths, empty fields, duplicates and train/eval leakage.

``dataset_stats`` works on the valid rows (invalid ones are counted, not fatal: EDA is how you find
them). Token lengths use the target model's tokenizer, the only slow part; ``tokens=False`` skips it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.data.formats import OPTIONAL, REQUIRED, prompt_of, text_of, to_example
from llmops_cli.data.keys import exact_key, near_key, prompt_key
from llmops_cli.data.loading import Row, check_dataset, dataset_spec, load_rows
from llmops_cli.data.tokens import ProgressFn, default_max_seq_len, default_model, load_tokenizer, token_lengths
from llmops_cli.errors import LlmopsError, UsageError

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

MAX_EXAMPLES = 5  # example pairs kept per finding
_SNIPPET = 80
_HISTOGRAM_BINS = 10


@dataclass
class Distribution:
    count: int
    min: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: int
    mean: float
    histogram: list[tuple[int, int, int]] = field(default_factory=list)  # (low, high inclusive, rows)


@dataclass
class Pair:
    """A row (``where``) that repeats or leaks an earlier / other row (``other``)."""

    where: str
    other: str
    text: str


@dataclass
class Duplicates:
    rows: int = 0  # rows that repeat an earlier row (what snapshot removes)
    groups: int = 0  # distinct rows that have repeats
    examples: list[Pair] = field(default_factory=list)


@dataclass
class Overlap:
    """Rows of this dataset whose prompt (or whole example) also appears in dataset ``against``."""

    against: str
    rows: int = 0  # rows in ``against``
    same_prompt: int = 0
    same_row: int = 0
    examples: list[Pair] = field(default_factory=list)
    error: str | None = None  # ``against`` could not be loaded


@dataclass
class DatasetStats:
    name: str
    format: str
    path: str
    rows: int
    invalid_rows: int
    chars: Distribution | None
    tokens: Distribution | None = None
    model: str | None = None
    tokens_note: str | None = None  # why token lengths are missing
    max_seq_len: int = 0
    over_max_seq_len: int = 0
    over_examples: list[str] = field(default_factory=list)
    empty: dict[str, int] = field(default_factory=dict)  # field -> rows where it is empty
    exact_duplicates: Duplicates = field(default_factory=Duplicates)
    near_duplicates: Duplicates = field(default_factory=Duplicates)
    overlaps: list[Overlap] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_stats(
    config: ProjectConfig,
    name: str,
    *,
    model: str | None = None,
    max_seq_len: int | None = None,
    against: list[str] | None = None,
    tokens: bool = True,
    progress: ProgressFn | None = None,
) -> DatasetStats:
    """Statistics of dataset ``name``; ``against`` (default: the project's other record datasets)."""
    started = time.perf_counter()
    check = check_dataset(config, name, training=False)
    rows, fmt = check.rows, check.format
    examples = [to_example(row, fmt) for row in rows]
    stats = DatasetStats(
        name=name,
        format=fmt,
        path=check.path,
        rows=len(rows),
        invalid_rows=check.invalid_rows,
        chars=distribution([len(text_of(e)) for e in examples]),
        max_seq_len=max_seq_len or default_max_seq_len(config, name),
        empty=empty_counts(fmt, rows),
    )
    stats.exact_duplicates, stats.near_duplicates = find_duplicates(fmt, rows)
    stats.seconds["load"] = time.perf_counter() - started
    for other in default_against(config, name) if against is None else against:
        stats.overlaps.append(find_overlap(config, fmt, rows, other, strict=against is not None))
    if tokens:
        _add_tokens(stats, config, name, model, rows, examples, progress)
    else:
        stats.tokens_note = "skipped (--no-tokens)"
    stats.seconds["total"] = time.perf_counter() - started
    return stats


def _add_tokens(
    stats: DatasetStats,
    config: ProjectConfig,
    name: str,
    model: str | None,
    rows: list[Row],
    examples: list[dict[str, Any]],
    progress: ProgressFn | None,
) -> None:
    model = model or default_model(config, name)
    if model is None:
        stats.tokens_note = "no local model declared; pass --model or declare one under models:"
        return
    stats.model = model
    begin = time.perf_counter()
    if progress is not None:
        progress("tokenizer", 0, 1)
    tokenizer = load_tokenizer(config, model)
    stats.seconds["tokenizer"] = time.perf_counter() - begin
    begin = time.perf_counter()
    lengths = token_lengths(tokenizer, examples, progress)
    stats.seconds["tokens"] = time.perf_counter() - begin
    stats.tokens = distribution(lengths)
    over = [row.where for row, n in zip(rows, lengths, strict=True) if n > stats.max_seq_len]
    stats.over_max_seq_len, stats.over_examples = len(over), over[:MAX_EXAMPLES]


# --- the measures ---------------------------------------------------------------------------------


def distribution(values: list[int], bins: int = _HISTOGRAM_BINS) -> Distribution | None:
    """Summary with nearest-rank percentiles and an equal-width histogram; None for no values."""
    if not values:
        return None
    ordered = sorted(values)

    def pct(p: float) -> float:
        return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])

    low, high = ordered[0], ordered[-1]
    width = max(1, math.ceil((high - low + 1) / bins))
    counts = [0] * math.ceil((high - low + 1) / width)
    for value in ordered:
        counts[(value - low) // width] += 1
    histogram = [(low + i * width, low + (i + 1) * width - 1, n) for i, n in enumerate(counts)]
    mean = sum(ordered) / len(ordered)
    return Distribution(len(ordered), low, pct(50), pct(90), pct(95), pct(99), high, round(mean, 1), histogram)


def empty_counts(fmt: str, rows: list[Row]) -> dict[str, int]:
    """Rows where each field of the format is empty (optional ones too: an all-empty context says a lot)."""
    counts: dict[str, int] = {}
    if fmt == "chat":
        counts = {"user content": 0, "assistant content": 0}
        for row in rows:
            for role in sorted({m["role"] for m in row.data["messages"] if not m["content"]}):
                counts[f"{role} content"] = counts.get(f"{role} content", 0) + 1
        return counts
    for key in (*REQUIRED[fmt], *OPTIONAL.get(fmt, ())):
        counts[key] = sum(1 for row in rows if not row.data.get(key))
    return counts


def find_duplicates(fmt: str, rows: list[Row]) -> tuple[Duplicates, Duplicates]:
    """(exact, near): rows that repeat an earlier row exactly, and the others that repeat one once normalized."""
    exact, near = Duplicates(), Duplicates()
    first_exact: dict[str, Row] = {}
    first_near: dict[str, Row] = {}
    exact_groups: set[str] = set()
    near_groups: set[str] = set()
    for row in rows:
        ek, nk = exact_key(fmt, row.data), near_key(fmt, row.data)
        if ek in first_exact:
            _count(exact, exact_groups, ek, row, first_exact[ek], fmt)
        elif nk in first_near:
            _count(near, near_groups, nk, row, first_near[nk], fmt)
        first_exact.setdefault(ek, row)
        first_near.setdefault(nk, row)
    return exact, near


def _count(found: Duplicates, groups: set[str], key: str, row: Row, first: Row, fmt: str) -> None:
    found.rows += 1
    groups.add(key)
    found.groups = len(groups)
    if len(found.examples) < MAX_EXAMPLES:
        found.examples.append(Pair(row.where, first.where, snippet(fmt, row.data)))


def default_against(config: ProjectConfig, name: str) -> list[str]:
    """The other datasets a row could leak into: every other chat, instruction or qa dataset."""
    return [n for n, d in config.datasets.items() if n != name and d.format in ("chat", "instruction", "qa")]


def find_overlap(config: ProjectConfig, fmt: str, rows: list[Row], other: str, *, strict: bool) -> Overlap:
    """Rows whose normalized prompt, or whole example, also appears in dataset ``other``."""
    overlap = Overlap(other)
    try:
        other_fmt = dataset_spec(config, other).format
        other_rows = load_rows(config, other, training=False)
    except LlmopsError as exc:
        if strict:
            raise
        overlap.error = exc.message
        return overlap
    if other_fmt == "documents":
        if strict:
            raise UsageError(f"dataset '{other}' holds documents, not rows to compare prompts with")
        overlap.error = "a documents dataset"
        return overlap
    overlap.rows = len(other_rows)
    prompts: dict[str, Row] = {}
    wholes: dict[str, Row] = {}
    for row in other_rows:
        prompts.setdefault(prompt_key(other_fmt, row.data), row)
        wholes.setdefault(exact_key(other_fmt, row.data), row)
    prompts.pop("", None)  # empty prompts match each other but leak nothing
    for row in rows:
        match = prompts.get(prompt_key(fmt, row.data))
        whole = wholes.get(exact_key(fmt, row.data))
        overlap.same_prompt += match is not None
        overlap.same_row += whole is not None
        hit = whole or match
        if hit is not None and len(overlap.examples) < MAX_EXAMPLES:
            overlap.examples.append(Pair(row.where, hit.where, snippet(fmt, row.data)))
    return overlap


def snippet(fmt: str, data: dict[str, Any], width: int = _SNIPPET) -> str:
    text = " ".join((prompt_of(fmt, data) or text_of(to_example(data, fmt))).split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
