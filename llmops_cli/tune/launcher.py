"""``llmops tune --launcher accelerate``: the same training under ``accelerate launch``.

This process snapshots the dataset and opens the run folder, then starts
``python -m accelerate.commands.launch ... -m llmops_cli.tune.worker`` and waits. Each worker runs
the same loop (:func:`llmops_cli.tune.pipeline.execute_run`); the main one registers the adapter and
records the version in ``run.json``, which is where this process reads the result from.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_cli.errors import LlmopsError, UsageError
from llmops_cli.tune import checkpoints as ckpt
from llmops_cli.tune.modeling import quiet_libraries, require_training_stack
from llmops_cli.tune.pipeline import TuneResult, base_model, open_run, snapshot
from llmops_cli.tune.spec import AdapterSpec, tune_spec
from llmops_cli.tune.trainer import TrainingInterrupted

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

WORKER_MODULE = "llmops_cli.tune.worker"


@dataclass(frozen=True)
class Launch:
    """How a run is started: ``single`` (this process) or ``accelerate`` (``accelerate launch``)."""

    kind: str
    num_processes: int | None  # None: accelerate's default (its config file, or one process)
    config_file: Path | None  # an ``accelerate config`` file; only under accelerate


def choose_launch(
    config: ProjectConfig,
    spec: AdapterSpec,
    *,
    launcher: str | None = None,
    num_processes: int | None = None,
    config_file: Path | None = None,
) -> Launch:
    """The launch the options ask for, else the adapter's ``launcher:`` block.

    A process count or an accelerate config file only means something under accelerate, so either
    implies it unless a launcher is named.
    """
    implied = "accelerate" if (num_processes or config_file) else spec.launcher.type
    kind = launcher or implied
    declared = spec.launcher.config_file
    chosen_file = config_file or (config.resolve_path(declared) if declared else None)
    return Launch(kind, num_processes or spec.launcher.num_processes, chosen_file if kind == "accelerate" else None)


def accelerate_command(
    project_root: Path,
    adapter: str,
    run_dir: Path,
    *,
    num_processes: int | None = None,
    config_file: Path | None = None,
    resume: bool = False,
    use_cpu: bool = False,
) -> list[str]:
    """The ``accelerate launch`` command line that runs the worker in each process."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file is not None:
        cmd += ["--config_file", str(config_file)]
    else:  # accelerate warns about each default it has to guess; say them
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if num_processes is not None:
        cmd += ["--num_processes", str(num_processes)]
    if config_file is None and (num_processes or 1) > 1:
        # torchrun starts one process each. accelerate's --cpu would start a single process (its
        # multi-CPU launch is mpirun), so CPU workers come through the same launcher and join a gloo
        # group (ACCELERATE_USE_CPU, see worker_env).
        cmd += ["--multi_gpu", "--quiet"]  # quiet: a failed process is summarized, not traced back twice
    elif use_cpu:
        cmd.append("--cpu")
    cmd += ["-m", WORKER_MODULE, "--project", str(project_root), "--adapter", adapter, "--run-dir", str(run_dir)]
    if resume:
        cmd.append("--resume")
    return cmd


def launch_tune(
    config: ProjectConfig,
    adapter: str | AdapterSpec,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    num_processes: int | None = None,
    config_file: Path | None = None,
    echo: Callable[[str], None] = print,
) -> TuneResult:
    """Train ``adapter`` (a name, or its spec from :func:`parse_tune_config`) under ``accelerate launch``
    and return what the main worker registered."""
    quiet_libraries()
    import torch

    tune = tune_spec(config, adapter)
    name = tune.name
    require_training_stack(tune.method)
    if config_file is not None and not config_file.is_file():
        raise UsageError(
            f"Accelerate config file {config_file} does not exist.", hint="Create it with: accelerate config"
        )
    if config_file is not None:
        check_engine(config_file, cuda=torch.cuda.is_available())
    worker_env = _model_code_env(config, tune.base)
    # Materialize the base and register the dataset version once, here, not from N workers at a time
    # (and not while the other workers wait at a barrier bounded by launcher.timeout_s).
    base_model(config, tune)
    snapshot(config, tune)
    run_dir = open_run(config, tune, resume=resume, max_steps=max_steps)
    cmd = accelerate_command(
        config.root, name, run_dir, num_processes=num_processes, config_file=config_file, resume=resume,
        use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    echo(f"run {run_dir.name}: {shlex.join(cmd)}")
    process = subprocess.Popen(cmd, cwd=config.root, env=worker_env)
    with _ignoring_sigint():  # Ctrl-C reaches the workers too (same process group); they checkpoint
        returncode = process.wait()
    status = ckpt.read_run(run_dir).get("status")
    if status == "finished":
        return TuneResult.from_run(run_dir)
    resume_cmd = f"llmops tune {name} --resume --launcher accelerate" + (
        f" --num-processes {num_processes}" if num_processes else ""
    )
    if status == "interrupted":
        raise TrainingInterrupted(
            f"Training of '{name}' was interrupted; the last checkpoint is in {run_dir}.",
            hint=f"Resume with: {resume_cmd}",
        )
    raise LlmopsError(
        f"accelerate launch exited with code {returncode} before the adapter was registered (run {run_dir.name}); "
        "nothing was registered.",
        hint=f"The failing process and its error are printed above. Fix it, then resume with: {resume_cmd}",
    )


SHARDED_ENGINES = ("FSDP", "DEEPSPEED")


def check_engine(config_file: Path, *, cuda: bool) -> str:
    """The accelerate config's ``distributed_type``; FSDP and DeepSpeed are refused without CUDA.

    accelerate (1.16) turns FSDP on only for GPU-type process groups (its state never pairs FSDP
    with MULTI_CPU), and ``accelerate launch`` sends a ``use_cpu`` config to its single-process
    launcher: on a CPU-only machine such a run would silently train in one unsharded process.
    """
    import yaml

    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"Cannot read the accelerate config {config_file}: {error}") from None
    engine = str(raw.get("distributed_type", "NO")).upper() if isinstance(raw, dict) else "NO"
    if engine in SHARDED_ENGINES and not cuda:
        raise UsageError(
            f"{config_file} asks for {engine}, which accelerate runs on GPUs only; this machine has no CUDA GPU.",
            hint="On the CPU, train data parallel instead: llmops tune NAME --launcher accelerate --num-processes 2",
        )
    return engine


def _model_code_env(config: ProjectConfig, base: str) -> dict[str, str] | None:
    """The workers' environment: this process's consent to trust_remote_code travels with them.

    A base model with ``trust_remote_code: true`` is refused here, before any worker starts, unless
    ``--allow-code`` (or LLMOPS_ALLOW_CODE=1) was given.
    """
    from llmops_cli.models import trust

    spec = config.models[base]
    if not trust.remote_code_allowed(spec.name, spec.trust_remote_code):
        return None
    return {**os.environ, trust.ENV_VAR: "1"}


@contextlib.contextmanager
def _ignoring_sigint() -> Iterator[None]:
    # Set after the child started: a child inherits an ignored SIGINT, and would then never stop.
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
