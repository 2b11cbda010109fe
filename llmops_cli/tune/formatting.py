"""Examples to token ids and labels: the loss is on assistant tokens only, padding or packing.

Chat examples are rendered with the model's own chat template. The assistant spans are found by
rendering the conversation prefix by prefix (``messages[:k]`` with the generation prompt, then
``messages[:k+1]``): the characters in between are what the assistant wrote, including the template's
end-of-turn marker, which the model must learn to emit. One tokenization of the whole conversation
with character offsets then marks the tokens inside those spans. Templates with ``{% generation %}``
blocks are asked directly (``return_assistant_tokens_mask``). ``text`` examples train on every token.

Packing (``packing: true``): examples are never split (a split example would train its second half
without its prompt). They are bin-packed, best fit and longest first, into rows of ``max_seq_len``
tokens, and each example's ``position_ids`` restart at 0. transformers turns position ids that restart
into a block-diagonal causal mask (flash-attention uses variable-length kernels), so an example never
attends to another one, and the first token of each example is not a target, so none is predicted
across a boundary: the loss equals the unpacked loss exactly (a test checks it). A micro-batch is
``batch_size`` rows either way; packing pays off when many examples are much shorter than max_seq_len.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmops_cli.errors import UsageError

IGNORE_INDEX = -100


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no loss is taken
    truncated: bool = False

    @property
    def num_targets(self) -> int:
        """Tokens the loss is taken on (position 0 is never predicted)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


@dataclass
class Row:
    """One sequence fed to the model: an example, or several packed ones."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int] | None = None  # set when packed: restarts at 0 for each example
    num_examples: int = 1

    @property
    def num_targets(self) -> int:
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


@dataclass
class FormatStats:
    examples: int = 0
    truncated: int = 0
    dropped: int = 0  # no target token left after truncation (the answer was cut off entirely)
    tokens: int = 0
    target_tokens: int = 0


# -- one example --------------------------------------------------------------------------------------


def tokenize_example(example: dict[str, Any], tokenizer: Any, max_seq_len: int) -> TokenizedExample:
    """Token ids and labels of one example (``{"messages": [...]}`` or ``{"text": ...}``), truncated."""
    if "messages" in example:
        ids, labels = _chat_tokens(example["messages"], tokenizer)
    elif "text" in example:
        ids = list(tokenizer(example["text"], add_special_tokens=True)["input_ids"])
        eos = tokenizer.eos_token_id
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)  # so the model learns where a text ends
        labels = list(ids)
    else:
        raise UsageError(f"A training example needs 'messages' or 'text'; got keys {sorted(example)}.")
    truncated = len(ids) > max_seq_len
    return TokenizedExample(ids[:max_seq_len], labels[:max_seq_len], truncated)


def tokenize_examples(
    examples: Sequence[dict[str, Any]], tokenizer: Any, max_seq_len: int
) -> tuple[list[TokenizedExample], FormatStats]:
    """Every example tokenized; those with no target token left after truncation are dropped."""
    stats = FormatStats(examples=len(examples))
    kept = []
    for example in examples:
        item = tokenize_example(example, tokenizer, max_seq_len)
        stats.truncated += item.truncated
        if item.num_targets == 0:
            stats.dropped += 1
            continue
        stats.tokens += len(item.input_ids)
        stats.target_tokens += item.num_targets
        kept.append(item)
    return kept, stats


def _render(tokenizer: Any, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return str(text)


def _chat_tokens(messages: list[dict[str, Any]], tokenizer: Any) -> tuple[list[int], list[int]]:
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(
            "The base model's tokenizer has no chat template, so chat examples cannot be formatted.",
            hint="Set chat_template: in the model entry of llmops.yaml, or train on a 'text' dataset.",
        )
    if "{% generation %}" in tokenizer.chat_template or "{%- generation %}" in tokenizer.chat_template:
        out = tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(out["input_ids"])
        return ids, [t if m else IGNORE_INDEX for t, m in zip(ids, out["assistant_masks"], strict=True)]
    full = _render(tokenizer, messages, generation_prompt=False)
    spans = _assistant_spans(messages, tokenizer, full)
    return _tokens_with_spans(tokenizer, full, spans)


def _assistant_spans(messages: list[dict[str, Any]], tokenizer: Any, full: str) -> list[tuple[int, int]]:
    """Character spans of ``full`` written by the assistant (content and end-of-turn marker)."""
    spans = []
    for k, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before = _render(tokenizer, messages[:k], generation_prompt=True) if k else ""
        through = _render(tokenizer, messages[: k + 1], generation_prompt=False)
        if not (full.startswith(through) and through.startswith(before)):
            raise UsageError(
                "The chat template does not render a conversation as a prefix of its continuation, so the "
                "assistant's tokens cannot be located.",
                hint="Give the model a chat_template with {% generation %} blocks around assistant messages.",
            )
        if len(through) > len(before):
            spans.append((len(before), len(through)))
    return spans


def _tokens_with_spans(tokenizer: Any, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    if getattr(tokenizer, "is_fast", True):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        labels = [
            tok if any(start < end_s and end > start_s for start_s, end_s in spans) else IGNORE_INDEX
            for tok, (start, end) in zip(ids, encoded["offset_mapping"], strict=True)
        ]
        return ids, labels
    # Slow tokenizers have no offsets: tokenize the pieces separately (token merges across a piece
    # boundary are lost, which only matters at the template's own separators).
    ids, labels, pos = [], [], 0
    for start, end in [*spans, (len(text), len(text))]:
        for piece, target in ((text[pos:start], False), (text[start:end], True)):
            if piece:
                piece_ids = list(tokenizer(piece, add_special_tokens=False)["input_ids"])
                ids += piece_ids
                labels += piece_ids if target else [IGNORE_INDEX] * len(piece_ids)
        pos = end
    return ids, labels


# -- rows: padded or packed -----------------------------------------------------------------------------


def as_rows(examples: Sequence[TokenizedExample]) -> list[Row]:
    """One row per example (no packing)."""
    return [Row(list(e.input_ids), list(e.labels)) for e in examples]


def pack_rows(examples: Sequence[TokenizedExample], capacity: int) -> list[Row]:
    """Best-fit-decreasing packing of whole examples into rows of at most ``capacity`` tokens."""
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free tokens, bin index), kept sorted for bisect
    for i in order:
        size = len(examples[i].input_ids)
        slot = bisect.bisect_left(free, (size, -1))  # the tightest bin the example still fits in
        if slot < len(free):
            room, index = free.pop(slot)
            bins[index].append(i)
            bisect.insort(free, (room - size, index))
        else:
            bins.append([i])
            bisect.insort(free, (capacity - size, len(bins) - 1))
    return [_packed_row([examples[i] for i in members]) for members in bins]


def _packed_row(members: list[TokenizedExample]) -> Row:
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in members:
        ids += example.input_ids
        # The first token of an example would be "predicted" from the previous example's last one.
        labels += [IGNORE_INDEX, *example.labels[1:]]
        positions += range(len(example.input_ids))
    return Row(ids, labels, positions, len(members))


def collate(rows: Sequence[Row], pad_id: int) -> dict[str, Any]:
    """Tensors for one micro-batch, right-padded to its longest row.

    Unpacked rows get an ``attention_mask``. Packed rows get ``position_ids`` and no mask, which is
    how transformers detects packed sequences; their padding is a separate sequence (positions from
    0 again) that no real token attends to.
    """
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    packed = rows[0].position_ids is not None
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        ids[i, :n] = torch.tensor(row.input_ids)
        labels[i, :n] = torch.tensor(row.labels)
        mask[i, :n] = 1
        if packed:
            assert row.position_ids is not None
            positions[i, :n] = torch.tensor(row.position_ids)
            positions[i, n:] = torch.arange(width - n)
    batch: dict[str, Any] = {"input_ids": ids, "labels": labels}
    if packed:
        batch["position_ids"] = positions
    else:
        batch["attention_mask"] = mask
    batch["num_tokens"] = int(mask.sum())  # real (non-pad) tokens, for tokens/s
    batch["num_targets"] = int((labels[:, 1:] != IGNORE_INDEX).sum())
    return batch
