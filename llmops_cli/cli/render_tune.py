"""Rendering for ``llmops tune``: the --dry-run plan, the result table and the training progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmops_cli.cli import output

if TYPE_CHECKING:
    from llmops_cli.tune import TrainEvent, TunePlan, TuneResult


def print_plan(plan: TunePlan) -> None:
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


def print_result(result: TuneResult) -> None:
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
def train_progress(adapter: str, *, enabled: bool) -> Iterator[Any]:
    """A rich progress bar (step, loss, lr, tokens/s, eval loss) fed by the trainer's events.

    Not :func:`llmops_cli.cli.output.progress`: a TrainEvent carries loss, lr and eval loss, more
    than ``(phase, done, total)``; its piped-log lines stay as they are (tests/test_tune.py reads them).

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
