"""Deterministic data order: which rows each process trains on at each micro-step.

The order of an epoch is a permutation seeded by (seed, epoch) and nothing else, so the micro-batch
at any position can be recomputed from its index alone. That is what makes ``--resume`` exact: a
resumed run skips the consumed micro-batches by arithmetic, without replaying them.

Rows of similar length are batched together (transformers' ``group_by_length`` idea): the shuffled
rows are cut into windows of 50 batches, each window is sorted by length and cut into batches, and the
batches are shuffled. A batch is padded to its longest row, so this removes most padding (on the
sample project's data: 81% of batch slots held real tokens with plain shuffling, 97% grouped) while
every epoch still sees the rows in a new order.

Rows are grouped by length in units of one optimizer step's global batch (``rows_per_batch *
world_size * grad_accum``). Each micro-step takes the next ``rows_per_batch * world_size`` rows of the
epoch's order and gives each process its slice (process ``r`` of micro-step ``m`` of a step takes the
slice ``m * world_size + r``), so the rows of a step do not depend on how the global batch is split
between processes and accumulation. When the last global batch of an epoch is short and there are
several processes, it is topped up from the start of the same epoch's order (as torch's
``DistributedSampler`` pads), so every process gets rows and collective calls stay in step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmops_cli.errors import UsageError
from llmops_cli.tune.spec import TrainingSpec

GROUP_WINDOW_BATCHES = 50  # batches per length-sorted window, as transformers' group_by_length


@dataclass
class Schedule:
    num_rows: int
    rows_per_batch: int  # rows per micro-batch per process (batch_size)
    world_size: int
    grad_accum: int
    seed: int
    total_steps: int
    micro_per_epoch: int
    lengths: Sequence[int] | None = None  # row lengths, to batch similar lengths together
    _orders: dict[int, list[int]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, num_rows: int, training: TrainingSpec, world_size: int = 1, lengths: Sequence[int] | None = None
    ) -> Schedule:
        if num_rows == 0:
            raise UsageError("There is nothing to train on: no training example has an answer token left.")
        rows_per_batch = training.batch_size
        micro_per_epoch = math.ceil(num_rows / (rows_per_batch * world_size))
        accum = training.gradient_accumulation_steps
        total = training.max_steps or max(1, math.ceil(training.epochs * micro_per_epoch / accum))
        return cls(num_rows, rows_per_batch, world_size, accum, training.seed, total, micro_per_epoch, lengths)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.micro_per_epoch / self.grad_accum)

    def epoch_of(self, micro_index: int) -> float:
        """Epochs completed after ``micro_index`` micro-batches."""
        return micro_index / self.micro_per_epoch

    def order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            # A string seed is hashed with SHA-512 by `random`: stable across Python versions and runs.
            rng = random.Random(f"llmops-tune:{self.seed}:{epoch}")
            indices = list(range(self.num_rows))
            rng.shuffle(indices)
            if self.lengths is not None:
                indices = self._grouped(indices, rng)
            self._orders = {epoch: indices}  # keep one epoch: memory stays flat on huge datasets
        return self._orders[epoch]

    def _grouped(self, indices: list[int], rng: random.Random) -> list[int]:
        assert self.lengths is not None
        lengths = self.lengths
        # Grouped by optimizer step (rows per process x processes x accumulation), so runs with the same
        # global batch see the same rows at each step however it is split: 1 process accumulating 2
        # micro-batches trains on the rows 2 processes take in one.
        size = self.rows_per_batch * self.world_size * self.grad_accum
        window = size * GROUP_WINDOW_BATCHES
        batches = []
        for start in range(0, len(indices), window):
            chunk = sorted(indices[start : start + window], key=lambda i: -lengths[i])
            batches += [chunk[j : j + size] for j in range(0, len(chunk), size)]
        full = [b for b in batches if len(b) == size]
        rng.shuffle(full)
        short = [b for b in batches if len(b) < size]  # at most one, and it stays last
        return [i for batch in full + short for i in batch]

    def rows_for(self, micro_index: int, rank: int = 0) -> list[int]:
        """Row indices process ``rank`` trains on at micro-step ``micro_index`` (0-based)."""
        epoch, position = divmod(micro_index, self.micro_per_epoch)
        order = self.order(epoch)
        size = self.rows_per_batch * self.world_size
        chunk = order[position * size : (position + 1) * size]
        if len(chunk) < size and self.world_size > 1:
            chunk = chunk + [order[i % len(order)] for i in range(size - len(chunk))]
        return chunk[rank * self.rows_per_batch : (rank + 1) * self.rows_per_batch]

    def shard_sizes(self) -> list[int]:
        """Rows each process trains on per epoch (a short last global batch is topped up when several)."""
        if self.world_size == 1:
            return [self.num_rows]
        return [self.micro_per_epoch * self.rows_per_batch] * self.world_size

    def micro_indices(self, step: int) -> range:
        """Micro-batches of optimizer step ``step`` (1-based)."""
        return range((step - 1) * self.grad_accum, step * self.grad_accum)


def eval_batches(num_rows: int, rows_per_batch: int) -> list[list[int]]:
    """Fixed eval batches (rows are already sorted by length, so padding stays small)."""
    return [list(range(i, min(i + rows_per_batch, num_rows))) for i in range(0, num_rows, rows_per_batch)]
