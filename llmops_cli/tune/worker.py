"""One training process under ``accelerate launch``: ``python -m llmops_cli.tune.worker``.

``llmops tune --launcher accelerate`` starts it with ``--run-dir``; it can also be launched directly
(``accelerate launch -m llmops_cli.tune.worker --project . --adapter NAME``, e.g. on a cluster), in
which case the main process opens the run and tells the others where it is. Progress is printed as
plain lines by the main process; the main process registers the adapter.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_cli.errors import LlmopsError

if TYPE_CHECKING:
    from llmops_cli.config.adapters import AdapterSpec
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.tune.trainer import TrainEvent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llmops_cli.tune.worker", description=__doc__)
    parser.add_argument("--project", required=True, help="Project directory (holding llmops.yaml).")
    parser.add_argument("--adapter", required=True, help="Adapter entry to train.")
    parser.add_argument("--run-dir", help="Run folder opened by 'llmops tune' (default: open one).")
    parser.add_argument("--resume", action="store_true", help="Continue from the run's last checkpoint.")
    parser.add_argument("--max-steps", type=int, help="Override training.max_steps (new runs only).")
    return parser.parse_args(argv)


def _print_event(every: int) -> Callable[[TrainEvent], None]:
    def show(event: TrainEvent) -> None:
        if event.kind == "step" and event.step % every and event.step != event.total_steps:
            return
        if event.kind == "step":
            line = (f"step {event.step}/{event.total_steps}  loss {event.loss:.4f}  lr {event.lr:.3g}  "
                    f"{event.tokens_per_s or 0:.0f} tokens/s")  # fmt: skip
        elif event.kind == "eval":
            line = f"step {event.step}/{event.total_steps}  eval loss {event.eval_loss:.4f}"
        elif event.kind == "start":
            line = f"training {event.total_steps} steps (from step {event.step})"
        else:
            line = event.message or event.kind
        print(line, file=sys.stderr, flush=True)

    return show


def _run_dir(config: ProjectConfig, tune: AdapterSpec, args: argparse.Namespace) -> Path:
    if args.run_dir:
        return Path(args.run_dir)
    from accelerate.utils import broadcast_object_list

    from llmops_cli.tune.pipeline import distributed_state, open_run

    shared: list[str | None] = [None]
    if distributed_state(tune.launcher.timeout_s).is_main_process:
        shared = [str(open_run(config, tune, resume=args.resume, max_steps=args.max_steps))]
    broadcast_object_list(shared)
    return Path(str(shared[0]))


def _lost_peer(error: BaseException) -> bool:
    """A collective failed because another process is gone or stuck (gloo/NCCL errors, timeouts)."""
    import torch.distributed as dist

    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        mark in text for mark in ("gloo", "NCCL", "Connection reset", "Connection closed", "timed out", "Timed out")
    )


def die_with_parent() -> None:
    """Have Linux kill this process when its launcher dies.

    torchrun starts the workers in their own process group, so SIGKILL of ``llmops tune``'s group
    (a job scheduler, ``kill -9 -PGID``) would leave them training, and even registering, as orphans.
    With PR_SET_PDEATHSIG they die with the launcher, and ``--resume`` picks up the last checkpoint.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import os
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the launcher died before the call above
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_dir:  # started by llmops tune: its launcher owns this process
        die_with_parent()
    from llmops_cli.tune.pipeline import execute_run, stop_on_signals
    from llmops_cli.tune.spec import parse_tune_config
    from llmops_cli.validation import load_config

    try:
        config = load_config(Path(args.project))
        tune = parse_tune_config(config, args.adapter)
        run_dir = _run_dir(config, tune, args)
        with stop_on_signals() as stop:
            result = execute_run(
                config,
                tune,
                run_dir,
                resume=args.resume,
                progress=_print_event(tune.training.logging_steps),
                stop=stop,
            )
    except LlmopsError as error:
        from llmops_cli.tune.trainer import TrainingInterrupted

        if isinstance(error, TrainingInterrupted) and args.run_dir:
            return error.exit_code  # every process stopped at the same step; llmops tune says so once
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(error.hint, file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not _lost_peer(error):
            raise
        import os

        rank, world = os.environ.get("RANK", "?"), os.environ.get("WORLD_SIZE", "?")
        detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        print(f"error: training process {rank} of {world} lost the others in a collective: {detail}", file=sys.stderr)
        print("Another process crashed or was killed (the launcher names it below), or one waited longer than "
              "launcher.timeout_s.", file=sys.stderr)  # fmt: skip
        return 1
    if result is not None:
        print(f"registered {result.version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
