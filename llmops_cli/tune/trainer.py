"""The training loop: LoRA/QLoRA with accelerate, checkpoints, exact resume, graceful stop.

The same function runs in one process (``llmops tune``) and in each process of ``accelerate launch``
(:mod:`llmops_cli.tune.worker`). It reports through a ``progress`` callback of :class:`TrainEvent`
(the CLI draws the bar), appends metrics to ``metrics.jsonl`` and never imports typer or rich.

Loss: each optimizer step averages the cross-entropy over every target token of its micro-batches
(on every process), as if they were one batch: micro-batch losses are summed and divided by the step's
global target count (``num_items_in_batch``), not averaged per micro-batch, so gradient accumulation
and packing do not change what is optimized.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.errors import EXIT_INTERRUPTED, LlmopsError
from llmops_cli.filenames import ADAPTER_CONFIG
from llmops_cli.tune import checkpoints as ckpt
from llmops_cli.tune.batching import Schedule
from llmops_cli.tune.loop import StepLoop, prepare_data, takes_logits_to_keep
from llmops_cli.tune.modeling import (
    BaseModel,
    check_device,
    count_parameters,
    load_for_training,
    load_tokenizer,
    quiet_libraries,
)
from llmops_cli.tune.spec import AdapterSpec, TrainingSpec

ADAPTER_DIR = "adapter"
METRICS_FILE = "metrics.jsonl"
EVAL_POINTS = 5  # short runs still get a few eval-loss points on their curve


class TrainingInterrupted(LlmopsError):
    """Training stopped on Ctrl-C (or SIGTERM) after saving a checkpoint."""

    exit_code = EXIT_INTERRUPTED


@dataclass
class TrainEvent:
    """What the loop reports: ``phase`` (a message), ``start``, ``step``, ``eval``, ``checkpoint``, ``done``."""

    kind: str
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    eval_loss: float | None = None
    epoch: float = 0.0
    message: str = ""


ProgressFn = Callable[[TrainEvent], None]  # events carry loss, lr and eval loss: more than (phase, done, total)


@dataclass
class TrainResult:
    run_dir: Path
    adapter_dir: Path
    steps: int
    total_steps: int
    train_loss: float | None
    eval_loss_before: float | None
    eval_loss_after: float | None
    tokens: int
    tokens_per_s: float
    runtime_s: float
    trainable_params: int
    total_params: int
    resumed_from: int | None = None
    is_main: bool = True
    precision: str = "fp32"
    device: str = "cpu"
    num_processes: int = 1
    train_stats: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"], data["adapter_dir"] = str(self.run_dir), str(self.adapter_dir)
        return data


def eval_interval(t: TrainingSpec, total_steps: int) -> int:
    """Steps between evals (there is also one at every checkpoint): a short run still shows a curve."""
    return max(1, t.logging_steps, math.ceil(total_steps / EVAL_POINTS))


def mixed_precision(precision: str) -> str:
    import torch

    if precision == "auto":
        if not torch.cuda.is_available():
            return "no"  # CPU half-precision training is slow or unsupported; fp32 it is
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


def use_cpu() -> bool:
    """Train on the CPU: no CUDA GPU, or ACCELERATE_USE_CPU set.

    On the CPU, processes started by torchrun (``accelerate launch --multi_gpu``) join a gloo process
    group only when accelerate is told ``cpu=True``; otherwise each one trains alone, on all the data.
    """
    import torch
    from accelerate.utils import parse_flag_from_env

    return bool(parse_flag_from_env("ACCELERATE_USE_CPU")) or not torch.cuda.is_available()


class _Metrics:
    """``metrics.jsonl``, written by the main process only."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after the checkpoint a run resumes from (they will be logged again)."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")


def train(
    tune: AdapterSpec,
    base: BaseModel,
    train_examples: Sequence[dict[str, Any]],
    eval_examples: Sequence[dict[str, Any]],
    run_dir: Path,
    *,
    resume: bool = False,
    progress: ProgressFn | None = None,
    stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train ``tune``'s LoRA adapter on ``base``; the finished adapter is saved to ``run_dir/adapter``.

    With ``resume``, training continues from the newest complete checkpoint in ``run_dir``: weights,
    optimizer, scheduler, RNG and data position restored. ``stop`` is polled after every step; when
    it returns True a checkpoint is saved and :class:`TrainingInterrupted` is raised.
    """
    quiet_libraries()
    import datetime

    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, set_seed
    from transformers import get_scheduler

    t = tune.training
    check_device(t.precision)
    timeout = InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=tune.launcher.timeout_s))
    accelerator = Accelerator(mixed_precision=mixed_precision(t.precision), cpu=use_cpu(), kwargs_handlers=[timeout])
    main = accelerator.is_main_process

    def emit(event: TrainEvent) -> None:
        if progress is not None and main:
            progress(event)

    emit(TrainEvent("phase", message=f"formatting {len(train_examples)} + {len(eval_examples)} examples"))
    tokenizer = load_tokenizer(base)
    data = prepare_data(train_examples, eval_examples, tokenizer, t)
    lengths = [len(row.input_ids) for row in data.train]
    schedule = Schedule.build(len(data.train), t, accelerator.num_processes, lengths)
    total = schedule.total_steps

    weights = f"{tune.quantization.bits}-bit" if tune.quantization else "full precision"
    emit(TrainEvent("phase", message=f"loading {base.name} ({weights})"))
    set_seed(t.seed)  # before the LoRA layers are created: their initial values come from it
    model = load_for_training(tune, base, accelerator.device)
    if accelerator.num_processes > 1:
        # Every process created the same LoRA weights from the same seed; from here on each draws its
        # own dropout masks (one shared stream would drop the same units on every shard).
        set_seed(t.seed + accelerator.process_index)
    trainable, total_params = count_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # biases are not decayed
        ],
        lr=t.learning_rate,
    )
    scheduler = get_scheduler(
        t.lr_scheduler, optimizer, num_warmup_steps=math.ceil(t.warmup_ratio * total), num_training_steps=total
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    metrics = _Metrics(run_dir / METRICS_FILE, main)

    state: dict[str, Any] = {"tokens": 0, "train_time": 0.0, "eval_loss_before": None, "train_loss": None}
    start_step, resumed_from = 0, None
    latest = ckpt.latest_checkpoint(run_dir) if resume else None
    if latest is not None:
        emit(TrainEvent("phase", message=f"restoring {latest.name}"))
        state = ckpt.load_checkpoint(
            latest, model=model, optimizer=optimizer, scheduler=scheduler, accelerator=accelerator
        )
        start_step = resumed_from = int(state["step"])
        metrics.truncate_after(start_step)
    elif main:
        metrics.path.unlink(missing_ok=True)  # a run restarted from scratch logs from scratch

    loop = StepLoop(
        accelerator, model, optimizer, scheduler, data, schedule, tokenizer.pad_token_id, t,
        logits_to_keep=takes_logits_to_keep(accelerator.unwrap_model(model)),
    )  # fmt: skip
    if start_step == 0:
        emit(TrainEvent("phase", message="evaluating the base model"))
        state["eval_loss_before"] = loop.evaluate()
        if state["eval_loss_before"] is not None:
            metrics.write({"step": 0, "eval_loss": state["eval_loss_before"]})
    emit(TrainEvent("start", step=start_step, total_steps=total, eval_loss=state["eval_loss_before"]))

    session_tokens, session_time = 0, 0.0
    window: list[float] = list(state.get("loss_window", []))  # losses since the last log line
    window_tokens, window_time = 0, 0.0
    every_eval = eval_interval(t, total)
    last_eval = state["eval_loss_before"]
    step = start_step
    for step in range(start_step + 1, total + 1):
        loss, lr, grad_norm, tokens, seconds = loop.step(step)
        state["tokens"] += tokens
        state["train_time"] += seconds
        session_tokens, session_time = session_tokens + tokens, session_time + seconds
        window.append(loss)
        window_tokens, window_time = window_tokens + tokens, window_time + seconds
        epoch = schedule.epoch_of(step * schedule.grad_accum)
        speed = session_tokens / session_time if session_time else 0.0
        # The progress shows the mean of the logging window so far: the figure metrics.jsonl gets at
        # the window's end, and at the last step the run's reported train loss (not one noisy step).
        window_mean = sum(window) / len(window)
        emit(
            TrainEvent(
                "step", step, total, loss=window_mean, lr=lr, tokens_per_s=speed, epoch=epoch, eval_loss=last_eval
            )
        )
        if step % t.logging_steps == 0 or step == total:
            state["train_loss"] = sum(window) / len(window)
            metrics.write({
                "step": step, "epoch": round(epoch, 4), "loss": state["train_loss"], "lr": lr,
                "grad_norm": grad_norm, "tokens": state["tokens"],
                "tokens_per_s": window_tokens / window_time if window_time else 0.0,
            })  # fmt: skip
            window, window_tokens, window_time = [], 0, 0.0
        if step % every_eval == 0 or step % t.save_steps == 0 or step == total:
            last_eval = loop.evaluate()
            if last_eval is not None:
                metrics.write({"step": step, "eval_loss": last_eval})
                emit(TrainEvent("eval", step, total, eval_loss=last_eval, epoch=epoch))
        state["loss_window"] = window  # so a resumed run logs the same means as an uninterrupted one
        if step < total and step % t.save_steps == 0:
            _save(run_dir, step, loop, state, emit)
        if step < total and _should_stop(accelerator, stop):
            if step % t.save_steps != 0:
                _save(run_dir, step, loop, state, emit)
            raise TrainingInterrupted(
                f"Training of '{tune.name}' stopped at step {step}/{total}; checkpoint saved in {run_dir}.",
                hint=f"Resume with: llmops tune {tune.name} --resume",
            )

    adapter_dir = run_dir / ADAPTER_DIR
    # FSDP / DeepSpeed: every process takes part in gathering the full weights to the main process.
    full_state = accelerator.get_state_dict(model) if ckpt.is_sharded(accelerator) else None
    if main:
        accelerator.unwrap_model(model).save_pretrained(
            str(adapter_dir), state_dict=full_state, safe_serialization=True
        )
        _record_base_source(adapter_dir, base.source)
    accelerator.wait_for_everyone()
    result = TrainResult(
        run_dir=run_dir,
        adapter_dir=adapter_dir,
        steps=step,
        total_steps=total,
        train_loss=state["train_loss"],
        eval_loss_before=state["eval_loss_before"],
        eval_loss_after=last_eval,
        tokens=int(state["tokens"]),
        tokens_per_s=session_tokens / session_time if session_time else 0.0,
        runtime_s=float(state["train_time"]),
        trainable_params=trainable,
        total_params=total_params,
        resumed_from=resumed_from,
        is_main=main,
        precision=accelerator.mixed_precision if accelerator.mixed_precision != "no" else "fp32",
        device=accelerator.device.type,
        num_processes=accelerator.num_processes,
        train_stats={**asdict(data.train_stats), "rows": len(data.train)},
    )
    emit(TrainEvent("done", step, total, loss=result.train_loss, eval_loss=result.eval_loss_after))
    return result


def _record_base_source(adapter_dir: Path, source: str) -> None:
    """Name the base by its llmops source: the local cache path peft wrote means nothing elsewhere.

    Rewritten after saving, because peft looks the name up (on the Hub, for a non-path) while saving.
    """
    path = adapter_dir / ADAPTER_CONFIG
    data = json.loads(path.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = source
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _should_stop(accelerator: Any, stop: Callable[[], bool] | None) -> bool:
    requested = bool(stop and stop())
    if accelerator.num_processes == 1:
        return requested
    if requested:  # every process must stop at the same step, or the others hang in a collective
        accelerator.set_trigger()
    return bool(accelerator.check_trigger())


def _save(run_dir: Path, step: int, loop: StepLoop, state: dict[str, Any], emit: ProgressFn) -> None:
    emit(TrainEvent("phase", step=step, message=f"saving checkpoint-{step}"))
    path = ckpt.save_checkpoint(
        run_dir, step, model=loop.model, optimizer=loop.optimizer, scheduler=loop.scheduler,
        accelerator=loop.accelerator, state=state,
    )  # fmt: skip
    if loop.accelerator.is_main_process:
        ckpt.update_run(run_dir, last_checkpoint=path.name, step=step)
    emit(TrainEvent("checkpoint", step=step, message=path.name))
