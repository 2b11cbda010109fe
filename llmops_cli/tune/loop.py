"""One optimizer step and one evaluation of the training loop, on every process.

Each optimizer step averages the cross-entropy over every target token of its micro-batches (on every
process), as if they were one batch: micro-batch losses are summed and divided by the step's global
target count, so gradient accumulation and packing do not change what is optimized. The data comes
tokenized, masked and packed by :func:`prepare_data`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmops_cli.tune.batching import Schedule, eval_batches
from llmops_cli.tune.formatting import IGNORE_INDEX, FormatStats, Row, as_rows, collate, pack_rows, tokenize_examples
from llmops_cli.tune.spec import MAX_GRAD_NORM, TrainingSpec


@dataclass
class TrainData:
    train: list[Row]
    eval: list[Row]
    train_stats: FormatStats
    eval_stats: FormatStats


def prepare_data(
    train_examples: Sequence[dict[str, Any]], eval_examples: Sequence[dict[str, Any]], tokenizer: Any, t: TrainingSpec
) -> TrainData:
    """Tokenize and mask both splits, then pack (or keep one row per example)."""
    train_items, train_stats = tokenize_examples(train_examples, tokenizer, t.max_seq_len)
    eval_items, eval_stats = tokenize_examples(eval_examples, tokenizer, t.max_seq_len)
    eval_items.sort(key=lambda e: len(e.input_ids))  # eval batches of similar lengths pad little
    if t.packing:
        return TrainData(
            pack_rows(train_items, t.max_seq_len), pack_rows(eval_items, t.max_seq_len), train_stats, eval_stats
        )
    return TrainData(as_rows(train_items), as_rows(eval_items), train_stats, eval_stats)


def takes_logits_to_keep(model: Any) -> bool:
    import inspect

    return "logits_to_keep" in inspect.signature(model.get_base_model().forward).parameters


@dataclass
class StepLoop:
    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    data: TrainData
    schedule: Schedule
    pad_id: int
    training: TrainingSpec
    logits_to_keep: bool = True  # the model's forward takes logits_to_keep (every recent HF causal LM)

    def _inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        device = self.accelerator.device
        keys = ("input_ids", "labels", "attention_mask", "position_ids")
        return {k: batch[k].to(device) for k in keys if k in batch}

    def _sum(self, *values: float) -> list[float]:
        import torch

        if self.accelerator.num_processes == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return [float(v) for v in self.accelerator.reduce(tensor, reduction="sum").tolist()]

    def _target_loss(self, batch: dict[str, Any]) -> Any:
        """Summed cross-entropy over the batch's target tokens.

        Only the positions that predict a target go through the LM head (``logits_to_keep``): with
        the loss on assistant tokens only, most positions need no logits, and the vocabulary-wide
        projection and softmax are a large share of a small model's step.
        """
        import torch

        # No KV cache: besides wasting memory, a cache makes transformers skip the block-diagonal mask
        # that keeps packed examples apart.
        inputs = {**self._inputs(batch), "use_cache": False}
        labels = inputs.pop("labels")
        targets = labels[:, 1:]
        if not self.logits_to_keep:
            logits = self.model(**inputs).logits[:, :-1]
        else:
            keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
            logits = self.model(**inputs, logits_to_keep=keep).logits
            targets = targets[:, keep]
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
            ignore_index=IGNORE_INDEX, reduction="sum",
        )  # fmt: skip

    def step(self, step: int) -> tuple[float, float, float, int, float]:
        """One optimizer step: (loss, lr, grad norm, real tokens on all processes, seconds)."""
        import torch

        started = time.perf_counter()
        acc, model = self.accelerator, self.model
        rank = acc.process_index
        batches = [
            collate([self.data.train[i] for i in self.schedule.rows_for(m, rank)], self.pad_id)
            for m in self.schedule.micro_indices(step)
        ]
        targets, tokens = self._sum(sum(b["num_targets"] for b in batches), sum(b["num_tokens"] for b in batches))
        denominator = torch.tensor(max(targets, 1.0), device=acc.device)
        model.train()
        loss_sum = 0.0
        for j, batch in enumerate(batches):
            last = j == len(batches) - 1
            with contextlib.nullcontext() if last else acc.no_sync(model):
                loss = self._target_loss(batch) / denominator
                # DDP averages gradients over processes; the loss is already a global mean, so undo it.
                acc.backward(loss * acc.num_processes)
                loss_sum += float(loss.detach())
        grad_norm = acc.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        (loss,) = self._sum(loss_sum)
        return loss, lr, float(grad_norm), int(tokens), time.perf_counter() - started

    def evaluate(self) -> float | None:
        """Mean cross-entropy over every target token of the eval rows (all processes), or None."""
        import torch

        if not self.data.eval:
            return None
        acc, model = self.accelerator, self.model
        batches = eval_batches(len(self.data.eval), self.training.batch_size)
        loss_sum, count = 0.0, 0
        model.eval()
        with torch.no_grad():
            for index in range(acc.process_index, len(batches), acc.num_processes):
                batch = collate([self.data.eval[i] for i in batches[index]], self.pad_id)
                loss_sum += float(self._target_loss(batch))
                count += batch["num_targets"]
        model.train()
        loss_sum, count_all = self._sum(loss_sum, count)
        return loss_sum / count_all if count_all else None
