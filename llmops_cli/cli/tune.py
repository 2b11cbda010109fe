"""``llmops tune``: train LoRA/QLoRA adapters, and merge them into their base model.

``llmops tune ADAPTER`` is short for ``llmops tune run ADAPTER``: the group inserts ``run`` when the
first word is not one of its commands, so ``llmops tune merge ADAPTER`` and ``llmops tune ADAPTER``
both read the way people type them (an adapter named ``merge`` or ``run`` needs the explicit form).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.base import LlmopsTyper, default_command_group
from llmops_cli.cli.options import AllowModelCodeOpt, JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE

if TYPE_CHECKING:
    from llmops_cli.tune import TrainEvent, TunePlan, TuneResult


app = LlmopsTyper(
    cls=default_command_group("run"),
    help="Train LoRA/QLoRA adapters (`llmops tune ADAPTER` is short for `llmops tune run ADAPTER`) "
    "and merge them into their base model.",
)


class Launcher(str, Enum):
    single = "single"
    accelerate = "accelerate"


@app.command("run")
def run(
    adapter: Annotated[str, typer.Argument(help="Adapter entry (under adapters: in llmops.yaml) to train.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last unfinished run from its last checkpoint.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (parameters, tokens, steps, memory) and stop.")
    ] = False,
    launcher: Annotated[
        Launcher | None,
        typer.Option("--launcher", help="single: this process; accelerate: `accelerate launch` (default: yaml)."),
    ] = None,
    num_processes: Annotated[
        int | None,
        typer.Option(
            "--num-processes", min=1, help="Processes for --launcher accelerate: one per GPU, or CPU processes."
        ),
    ] = None,
    accelerate_config: Annotated[
        Path | None, typer.Option("--accelerate-config", help="An `accelerate config` file (FSDP, DeepSpeed...).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Override training.max_steps.")] = None,
    allow_code: AllowModelCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train an adapter and register it as adapter/NAME/vN (Ctrl-C saves a checkpoint; --resume continues)."""
    from llmops_cli.tune import launch_tune, parse_tune_config, plan_tune, run_tune

    consent_to_code(allow_code)
    cfg = STATE.config()
    tune = parse_tune_config(cfg, adapter)
    # --num-processes / --accelerate-config only mean something under accelerate: they imply it.
    implied = "accelerate" if (num_processes or accelerate_config) else tune.launcher.type
    kind = launcher.value if launcher else implied
    processes = num_processes or tune.launcher.num_processes
    config_file = accelerate_config or (
        cfg.resolve_path(tune.launcher.config_file) if tune.launcher.config_file else None
    )
    if dry_run:
        plan = plan_tune(
            cfg, adapter, max_steps=max_steps, num_processes=processes or 1, launcher=kind,
            config_file=config_file if kind == "accelerate" else None,
        )  # fmt: skip
        output.print_json(plan.as_dict()) if json_out else _print_plan(plan)
        return
    if kind == "accelerate":
        result = launch_tune(
            cfg, adapter, resume=resume, max_steps=max_steps, num_processes=processes, config_file=config_file,
            echo=output.info,
        )  # fmt: skip
    else:
        with _progress(adapter, enabled=not (json_out or STATE.quiet)) as report:
            result = run_tune(cfg, adapter, resume=resume, max_steps=max_steps, progress=report)
    if json_out:
        output.print_json(result.as_dict())
        return
    _print_result(result)


@app.command("merge")
def merge(
    adapter: Annotated[str, typer.Argument(help="Adapter whose checked-out version is merged.")],
    output_dir: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder to write (default: .llmops/merged/ADAPTER).")
    ] = None,
    dequantize: Annotated[
        bool, typer.Option("--dequantize", help="For a QLoRA adapter: merge into the full-precision base.")
    ] = False,
    allow_code: AllowModelCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Merge an adapter into its base model and save the result as a safetensors Hugging Face folder."""
    from llmops_cli.tune import merge_adapter

    consent_to_code(allow_code)
    cfg = STATE.config()
    if dequantize:
        output.info(f"{adapter}: loading the base model in full precision and merging there (--dequantize)")
    result = merge_adapter(cfg, adapter, output=output_dir.resolve() if output_dir else None, dequantize=dequantize)
    if json_out:
        output.print_json(result.as_dict())
        return
    what = f"{result.version or adapter} + {result.base}"
    output.success(f"merged {what} ({result.dtype}) into {result.output} in {result.seconds:.1f} s")


# -- rendering ------------------------------------------------------------------------------------------


def _print_plan(plan: TunePlan) -> None:
    import shlex

    from llmops_cli.cli.output import human_size
    from llmops_cli.text import plural

    rows = [
        ["adapter", f"{plan.adapter} ({plan.method} on {plan.base}: {plan.base_source})"],
        ["examples", f"{plan.examples_train} train, {plan.examples_eval} eval ({plan.dataset})"],
        ["tokens / epoch", f"{plan.tokens:,} ({plan.target_tokens:,} with loss; {plan.truncated} truncated, "
                           f"{plan.dropped} dropped)"],
        ["sequences / epoch", f"{plan.rows:,} ({'packed' if plan.packing else 'one example each'}; "
                              f"{plan.padding_efficiency:.0%} of batch slots are real tokens)"],
        ["steps", f"{plan.steps_per_epoch} per epoch, {plan.total_steps} total ({plan.epochs:.2f} epochs)"],
        ["global batch", f"{plan.effective_batch} sequences per step = {plan.batch_size} per process x "
                         f"{plural(plan.num_processes, 'process', 'processes')} x "
                         f"{plan.gradient_accumulation_steps} accumulated"],
        ["trainable parameters", f"{plan.trainable_params:,} of {plan.total_params:,} ({plan.trainable_pct:.3f}%)"],
    ]  # fmt: skip
    memory = ", ".join(f"{k} {human_size(v)}" for k, v in plan.memory.items() if k != "total")
    topped = sum(plan.shard_rows) - plan.rows
    for rank, shard in enumerate(plan.shard_rows):
        label = "process" if plan.num_processes == 1 else f"process {rank}"
        rows.append([label, f"{shard:,} sequences per epoch; memory (estimate) {human_size(plan.memory['total'])}: "
                            f"{memory}"])  # fmt: skip
    if topped > 0:
        rows.append(["", f"the short last batch of an epoch is topped up with {topped} repeated sequences"])
    if plan.command:
        rows.append(["launcher", shlex.join(plan.command)])
    output.table(f"llmops tune {plan.adapter} --dry-run", ["", "plan"], rows)


def _print_result(result: TuneResult) -> None:
    m = result.metrics

    def num(value: Any, fmt: str = ".4f") -> str:
        return "-" if value is None else format(value, fmt)

    rows = [
        ["train loss (last logging window)", num(m.get("train_loss"))],
        ["eval loss", f"{num(m.get('eval_loss_before'))} → {num(m.get('eval_loss_after'))}"],
        ["steps", str(m.get("steps"))],
        ["tokens", f"{m.get('tokens', 0):,} at {num(m.get('tokens_per_s'), '.1f')} tokens/s"],
        ["training time", f"{num(m.get('runtime_s'), '.1f')} s"],
        ["run", str(result.run_dir)],
    ]
    output.table(None, ["", result.adapter], rows)
    resumed = f" (resumed from step {result.resumed_from})" if result.resumed_from else ""
    output.success(f"registered {result.version}{resumed}")


@contextlib.contextmanager
def _progress(adapter: str, *, enabled: bool) -> Iterator[Any]:
    """A rich progress bar (step, loss, lr, tokens/s, eval loss) fed by the trainer's events.

    ``loss`` is the mean over the current logging window (``logging_steps``), the figure written to
    metrics.jsonl; at the last step it is the summary's "train loss". In a piped log the bar's
    fields come out as a plain line every few seconds (see :mod:`llmops_cli.cli.progress`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from llmops_cli.cli.progress import live_progress

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]} tok/s"),
        TextColumn("eval {task.fields[eval]}"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with live_progress(*columns, enabled=enabled, transient=False) as bar:
        task = bar.add_task(adapter, total=None, start=False, loss="-", lr="-", speed="-", eval="-")
        plain = enabled and not bar.console.is_terminal

        def report(event: TrainEvent) -> None:
            if plain and event.kind == "phase":
                bar.console.print(f"{adapter}: {event.message}", soft_wrap=True, markup=False)
            if event.kind == "phase":
                bar.update(task, description=f"{adapter}: {event.message}")
            elif event.kind == "start":
                bar.start_task(task)
                evaluated = "-" if event.eval_loss is None else f"{event.eval_loss:.4f}"
                bar.update(task, description=adapter, total=event.total_steps, completed=event.step, eval=evaluated)
            elif event.kind == "step":
                bar.update(
                    task, description=adapter, completed=event.step, loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}",
                    speed=f"{event.tokens_per_s or 0:.0f}",
                )  # fmt: skip
            elif event.kind == "eval":
                bar.update(task, eval=f"{event.eval_loss:.4f}")
            elif event.kind == "checkpoint":
                bar.console.print(f"  saved {event.message}", markup=False)

        yield report
