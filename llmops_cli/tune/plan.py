"""``llmops tune --dry-run``: what a run would do and roughly what it needs, without training.

Parameters are counted on the meta device (no weights loaded). The memory estimate adds up the base
weights at their storage type (bitsandbytes 4-bit blocks with their scales, 8-bit rows, or the load
dtype), the LoRA weights, their gradients and AdamW's two moments (float32), and activations: the
tensors a decoder layer keeps for the backward pass per token, times layers and tokens in a
micro-batch, plus the logits of the positions that carry a target. It is an estimate, meant to say
"fits in 4 GB" or "needs 40 GB", not to the megabyte.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmops_cli.tune.batching import Schedule
from llmops_cli.tune.formatting import FormatStats, as_rows, pack_rows, tokenize_examples
from llmops_cli.tune.modeling import BaseModel, count_parameters, load_tokenizer, meta_model
from llmops_cli.tune.spec import AdapterSpec

_BLOCK_4BIT = 64  # bitsandbytes' 4-bit block size: one absmax per 64 weights
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass
class TunePlan:
    adapter: str
    method: str
    base: str
    base_source: str
    dataset: str
    examples_train: int
    examples_eval: int
    tokens: int  # real tokens per epoch, after formatting (and truncation)
    target_tokens: int  # tokens the loss is taken on
    truncated: int
    dropped: int
    rows: int  # sequences per epoch (packed rows, or examples)
    packing: bool
    padding_efficiency: float  # real tokens / (real + pad) tokens over the first epoch's micro-batches
    steps_per_epoch: int
    total_steps: int
    epochs: float
    effective_batch: int
    num_processes: int
    trainable_params: int
    total_params: int
    memory: dict[str, int] = field(default_factory=dict)  # bytes per process, by part, and "total"
    batch_size: int = 1  # sequences per micro-batch per process
    gradient_accumulation_steps: int = 1
    shard_rows: list[int] = field(default_factory=list)  # rows each process trains on per epoch
    launcher: str = "single"
    command: list[str] | None = None  # what --launcher accelerate will run (the run folder is made then)

    @property
    def trainable_pct(self) -> float:
        return 100.0 * self.trainable_params / self.total_params if self.total_params else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "trainable_pct": round(self.trainable_pct, 4)}


def build_plan(
    tune: AdapterSpec,
    base: BaseModel,
    train_examples: Sequence[dict[str, Any]],
    eval_examples: Sequence[dict[str, Any]],
    *,
    dataset_label: str,
    num_processes: int = 1,
    device_type: str = "cpu",
) -> TunePlan:
    t = tune.training
    tokenizer = load_tokenizer(base)
    items, stats = tokenize_examples(train_examples, tokenizer, t.max_seq_len)
    rows = pack_rows(items, t.max_seq_len) if t.packing else as_rows(items)
    schedule = Schedule.build(len(rows), t, num_processes, [len(r.input_ids) for r in rows])
    model = meta_model(tune, base)
    trainable, total = count_parameters(model)
    return TunePlan(
        adapter=tune.name,
        method=tune.method,
        base=base.name,
        base_source=base.source,
        dataset=dataset_label,
        examples_train=len(train_examples),
        examples_eval=len(eval_examples),
        tokens=stats.tokens,
        target_tokens=stats.target_tokens,
        truncated=stats.truncated,
        dropped=stats.dropped,
        rows=len(rows),
        packing=t.packing,
        padding_efficiency=_padding_efficiency(rows, schedule),
        steps_per_epoch=schedule.steps_per_epoch,
        total_steps=schedule.total_steps,
        epochs=schedule.total_steps * t.gradient_accumulation_steps / schedule.micro_per_epoch,
        effective_batch=t.batch_size * t.gradient_accumulation_steps * num_processes,
        num_processes=num_processes,
        trainable_params=trainable,
        total_params=total,
        memory=estimate_memory(tune, base, model, stats, device_type),
        batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        shard_rows=schedule.shard_sizes(),
    )


def _padding_efficiency(rows: Sequence[Any], schedule: Schedule) -> float:
    """Real tokens over the slots the micro-batches of epoch 1 fill, each padded to its longest row."""
    real = slots = 0
    for micro in range(schedule.micro_per_epoch):
        for rank in range(schedule.world_size):
            lengths = [len(rows[i].input_ids) for i in schedule.rows_for(micro, rank)]
            real += sum(lengths)
            slots += max(lengths, default=0) * len(lengths)
    return real / slots if slots else 0.0


def estimate_memory(
    tune: AdapterSpec, base: BaseModel, model: Any, stats: FormatStats, device_type: str
) -> dict[str, int]:
    """Bytes one process needs, by part (see the module docstring for what is counted).

    Data parallel processes each hold the whole model and their own micro-batch, so every process
    needs this much (FSDP or DeepSpeed ZeRO would shard the weights; that is not counted).
    """
    config = model.get_base_model().config
    load_bytes = _DTYPE_BYTES.get(base.dtype, 4 if device_type == "cpu" else 2)
    weights = trainable = 0
    for name, param in model.named_parameters():
        n = param.numel()
        if param.requires_grad:
            trainable += n
            continue
        weights += _frozen_bytes(name, n, tune, load_bytes)
    t = tune.training
    tokens = t.batch_size * t.max_seq_len
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    inner = int(getattr(config, "intermediate_size", 4 * hidden) or 4 * hidden)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    heads = int(getattr(config, "num_attention_heads", 1) or 1)
    act_bytes = 2 if (device_type == "cuda" and t.precision != "fp32") else 4
    checkpointing = tune.quantization is not None and device_type == "cuda"
    # Kept per token per layer: ~10 hidden-sized tensors (norms, q/k/v/o, residuals, LoRA inputs),
    # ~3 MLP-sized ones, and a row of attention probabilities per head (eager/SDPA-math path).
    per_layer = tokens * (10 * hidden + 3 * inner + heads * t.max_seq_len) * act_bytes
    kept_layers = 1 if checkpointing else layers
    target_fraction = stats.target_tokens / stats.tokens if stats.tokens else 1.0
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    logits = math.ceil(tokens * target_fraction) * vocab * 4 * 3  # logits, float32 copy, their gradient
    activations = per_layer * kept_layers + (tokens * hidden * act_bytes * layers if checkpointing else 0) + logits
    parts = {
        "weights": weights,
        "lora": trainable * 4,
        "gradients": trainable * 4,
        "optimizer": trainable * 8,
        "activations": activations,
    }
    parts["total"] = sum(parts.values())
    return parts


def _frozen_bytes(name: str, n: int, tune: AdapterSpec, load_bytes: int) -> int:
    quant = tune.quantization
    quantized = quant is not None and ".layers." in name and name.endswith("weight") and "norm" not in name
    if not quantized:
        # prepare_model_for_kbit_training upcasts everything it does not quantize to float32.
        return n * (4 if quant is not None else load_bytes)
    assert quant is not None
    if quant.bits == 8:
        return n + 4 * int(math.sqrt(n))  # int8 weights plus a float32 scale per row (rows ~ sqrt(n))
    scales = n / _BLOCK_4BIT * (1 + 4 / 256 if quant.double_quant else 4)  # 8-bit absmax (+ fp32 per 256)
    return int(n / 2 + scales)
