"""``llmops tune``: from an adapter entry to a registered ``adapter/NAME/vN``.

Steps: resolve the base model (materialized once, fingerprinted), snapshot the dataset (a registered
``dataset/NAME@vN``), open a run folder under ``.llmops/runs/NAME/``, train (in this process, or in
each process of ``accelerate launch`` via :mod:`llmops_cli.tune.worker`), then, on the main process,
draw the curve and register the PEFT adapter with its lineage. Library API; no typer or rich here.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError
from llmops_cli.filenames import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from llmops_cli.tune import checkpoints as ckpt
from llmops_cli.tune.modeling import BaseModel, quiet_libraries, require_training_stack
from llmops_cli.tune.spec import AdapterSpec, tune_spec
from llmops_cli.tune.trainer import METRICS_FILE, ProgressFn, TrainingInterrupted, TrainResult

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.tune.plan import TunePlan

CURVE_FILE = "training_curve.png"
TRAIN_CONFIG_FILE = "train_config.json"
CARD_FILE = "README.md"


@dataclass
class TuneResult:
    """A finished run: the registered version and what it measured."""

    adapter: str
    version: str  # the tag, e.g. adapter/faq-lora/v3
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    resumed_from: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "version": self.version,
            "run_dir": str(self.run_dir),
            "metrics": self.metrics,
            "files": self.files,
            "resumed_from": self.resumed_from,
        }

    @classmethod
    def from_run(cls, run_dir: Path) -> TuneResult:
        info = ckpt.read_run(run_dir)
        if info.get("status") != "finished" or "result" not in info:
            raise UsageError(f"Run {run_dir.name} did not finish; see its output above.")
        return cls(**{**info["result"], "run_dir": run_dir})


# -- inputs: base model and dataset ----------------------------------------------------------------------


def base_model(config: ProjectConfig, tune: AdapterSpec) -> tuple[BaseModel, str]:
    """The base as a local HF folder (GGUF dequantized once), and its fingerprint for lineage."""
    from llmops_cli.models import materialize_resolved
    from llmops_cli.models.identity import identity

    weights = identity(config, tune.base)
    folder = materialize_resolved(weights.resolved)
    return BaseModel.from_spec(weights.spec, folder), weights.fingerprint()


def snapshot(config: ProjectConfig, tune: AdapterSpec) -> Any:
    """The dataset snapshot (registered ``dataset/NAME@vN``, reused when unchanged) with its split."""
    from llmops_cli.data import snapshot_dataset

    return snapshot_dataset(config, tune.dataset, eval_split=tune.training.eval_split, seed=tune.training.seed)


def dry_run_split(config: ProjectConfig, tune: AdapterSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The train/eval examples a snapshot would hold, without registering one (a dry run writes nothing).

    Uses the snapshot's own cleaning and split rules, so the counts are the ones training will see.
    """
    from llmops_cli.data import load_rows, to_example
    from llmops_cli.data.snapshot import clean_rows, split_rows

    fmt = config.datasets[tune.dataset].format
    cleaned = clean_rows(fmt, load_rows(config, tune.dataset))
    t = tune.training
    train, held_out = split_rows(fmt, cleaned.rows, eval_split=t.eval_split, seed=t.seed)
    return [to_example(r, fmt) for r in train], [to_example(r, fmt) for r in held_out]


# -- dry run ----------------------------------------------------------------------------------------


def plan_tune(
    config: ProjectConfig,
    adapter: str | AdapterSpec,
    *,
    max_steps: int | None = None,
    num_processes: int = 1,
    launcher: str = "single",
    config_file: Path | None = None,
) -> TunePlan:
    """What ``llmops tune NAME`` would do: counts, steps, shards, a memory estimate per process and
    (``launcher="accelerate"``) the command it would run; nothing is written. ``adapter`` is a name or
    its spec from :func:`parse_tune_config`."""
    from llmops_cli.tune.plan import build_plan

    tune = tune_spec(config, adapter).with_max_steps(max_steps)
    name = tune.name
    require_training_stack(tune.method)
    quiet_libraries()
    import torch

    base, _ = base_model(config, tune)
    train_examples, eval_examples = dry_run_split(config, tune)
    plan = build_plan(
        tune,
        base,
        train_examples,
        eval_examples,
        dataset_label=tune.dataset,
        num_processes=num_processes,
        device_type="cuda" if torch.cuda.is_available() else "cpu",
    )
    plan.launcher = launcher
    if launcher == "accelerate":
        from llmops_cli.tune.launcher import accelerate_command

        run_dir = ckpt.runs_dir(config.root, name) / "<new-run>"
        plan.command = accelerate_command(
            config.root, name, run_dir, num_processes=num_processes, config_file=config_file,
            use_cpu=not torch.cuda.is_available(),
        )  # fmt: skip
    return plan


# -- runs ---------------------------------------------------------------------------------------------


def open_run(config: ProjectConfig, tune: AdapterSpec, *, resume: bool, max_steps: int | None) -> Path:
    """A new run folder, or (``resume``) the newest unfinished one, checked against today's config."""
    config_hash = config.section_hash("adapters", tune.name)
    if resume:
        run_dir = ckpt.resumable_run(config.root, tune.name)
        if run_dir is None:
            raise UsageError(
                f"There is no unfinished run of '{tune.name}' to resume.",
                hint=f"Start one with: llmops tune {tune.name}",
            )
        info = ckpt.read_run(run_dir)
        if info.get("config_hash") != config_hash:
            raise UsageError(
                f"The settings of adapters.{tune.name} changed since run {run_dir.name} started, so it cannot "
                "be resumed with them.",
                hint=f"Restore the old settings to resume, or start a fresh run: llmops tune {tune.name}",
            )
        if max_steps is not None and max_steps != info.get("max_steps"):
            raise UsageError(
                f"Run {run_dir.name} was started with --max-steps {info.get('max_steps')}; a resumed run keeps it.",
                hint="Resume without --max-steps (or with the same value).",
            )
        return run_dir
    from llmops_cli.versioning import ArtifactRegistry

    ArtifactRegistry.for_config(config).ensure_state_dir()  # .llmops/ ignores itself in git
    run_dir = ckpt.new_run_dir(config.root, tune.name)
    ckpt.update_run(
        run_dir,
        run_id=run_dir.name,
        adapter=tune.name,
        status="created",
        config_hash=config_hash,
        max_steps=max_steps,
        train_config=tune.with_max_steps(max_steps).as_dict(),
    )
    return run_dir


def run_tune(
    config: ProjectConfig,
    adapter: str | AdapterSpec,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    progress: ProgressFn | None = None,
) -> TuneResult:
    """Train ``adapter`` (a name, or its spec from :func:`parse_tune_config`) in this process and
    register it; Ctrl-C saves a checkpoint first."""
    tune = tune_spec(config, adapter)
    require_training_stack(tune.method)
    run_dir = open_run(config, tune, resume=resume, max_steps=max_steps)
    with stop_on_signals() as stop:
        result = execute_run(config, tune, run_dir, resume=resume, progress=progress, stop=stop)
    assert result is not None  # a single process is the main process
    return result


def execute_run(
    config: ProjectConfig,
    adapter: str | AdapterSpec,
    run_dir: Path,
    *,
    resume: bool,
    progress: ProgressFn | None = None,
    stop: Any = None,
) -> TuneResult | None:
    """Train in an opened run folder and, on the main process, register the adapter.

    Runs in every process of a multi-process launch; only the main one registers (and returns).
    """
    quiet_libraries()
    from llmops_cli.tune.trainer import train

    info = ckpt.read_run(run_dir)
    tune = tune_spec(config, adapter).with_max_steps(info.get("max_steps"))
    name = tune.name
    state = distributed_state(tune.launcher.timeout_s)
    with state.main_process_first():  # one process materializes and snapshots; the others reuse it
        base, base_fp = base_model(config, tune)
        snap = snapshot(config, tune)
    if resume and info.get("snapshot") and info["snapshot"]["content_hash"] != snap.content_hash:
        raise UsageError(
            f"Dataset '{tune.dataset}' changed since run {run_dir.name} started ({info['snapshot']['ref']}); "
            "the resumed run would skip the wrong examples.",
            hint=f"Restore the dataset to resume, or start a fresh run: llmops tune {name}",
        )
    main = bool(state.is_main_process)
    lock = ckpt.run_lock(run_dir) if main else contextlib.nullcontext()
    with lock:
        if main:
            ckpt.update_run(
                run_dir,
                status="running",
                snapshot={"ref": snap.ref, "content_hash": snap.content_hash},
                base={"name": base.name, "source": base.source, "fingerprint": base_fp},
            )
        try:
            result = train(tune, base, snap.train, snap.eval, run_dir, resume=resume, progress=progress, stop=stop)
        except (TrainingInterrupted, KeyboardInterrupt):
            if main:
                ckpt.update_run(run_dir, status="interrupted")
            raise
        except BaseException:
            if main:
                ckpt.update_run(run_dir, status="failed")
            raise
        if not result.is_main:
            return None
        return register_adapter(config, tune, base, base_fp, snap, result)


def distributed_state(timeout_s: int) -> Any:
    """accelerate's process state, created once per process with a timeout on every collective.

    The first ``PartialState()`` of a process initializes torch.distributed; its ``timeout`` bounds
    how long a process waits for the others in an all-reduce or barrier, so a rank that died or hung
    fails the run (with an error naming the collective) instead of leaving the others waiting forever.
    """
    import datetime

    from accelerate import PartialState
    from accelerate.utils import InitProcessGroupKwargs

    kwargs = InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=timeout_s)).to_kwargs()
    from llmops_cli.tune.trainer import use_cpu

    return PartialState(cpu=use_cpu(), **kwargs)


# -- registration ---------------------------------------------------------------------------------------


def register_adapter(
    config: ProjectConfig, tune: AdapterSpec, base: BaseModel, base_fp: str, snap: Any, result: TrainResult
) -> TuneResult:
    """Curve, config and card next to the adapter, then ``adapter/NAME/vN`` with its lineage."""
    from llmops_cli.tune.plots import plot_training_curve
    from llmops_cli.versioning import ArtifactRegistry, Input

    run_dir = result.run_dir
    curve = plot_training_curve(run_dir / METRICS_FILE, run_dir / CURVE_FILE, title=f"{tune.name} ({tune.method})")
    train_config = {
        **tune.as_dict(),
        "base_model": {"name": base.name, "source": base.source, "fingerprint": base_fp},
        "dataset": {"ref": snap.ref, "content_hash": snap.content_hash},
        "runtime": {"precision": result.precision, "device": result.device, "num_processes": result.num_processes},
    }
    (run_dir / TRAIN_CONFIG_FILE).write_text(json.dumps(train_config, indent=2, sort_keys=True) + "\n")
    metrics = {
        "train_loss": result.train_loss,
        "eval_loss_before": result.eval_loss_before,
        "eval_loss_after": result.eval_loss_after,
        "tokens_per_s": round(result.tokens_per_s, 2),
        "steps": result.steps,
        "tokens": result.tokens,
        "runtime_s": round(result.runtime_s, 2),
        "trainable_params": result.trainable_params,
    }
    (run_dir / CARD_FILE).write_text(model_card(tune, base, snap, metrics))
    files = {
        ADAPTER_CONFIG: result.adapter_dir / ADAPTER_CONFIG,
        ADAPTER_WEIGHTS: result.adapter_dir / ADAPTER_WEIGHTS,
        CARD_FILE: run_dir / CARD_FILE,
        METRICS_FILE: run_dir / METRICS_FILE,
        CURVE_FILE: curve,
        TRAIN_CONFIG_FILE: run_dir / TRAIN_CONFIG_FILE,
    }
    params = {k: v for k, v in train_config.items() if k not in ("name", "description", "base_model", "dataset")}
    version = ArtifactRegistry.for_config(config).register(
        "adapter",
        tune.name,
        files,
        inputs=[Input(snap.ref, snap.content_hash), Input(base.source, base_fp)],
        config_hash=config.section_hash("adapters", tune.name),
        metrics=metrics,
        params=params,
        summary=_summary(tune, metrics),
    )
    tuned = TuneResult(tune.name, version.tag, run_dir, metrics, sorted(files), result.resumed_from)
    ckpt.update_run(run_dir, status="finished", version=version.tag, result={
        k: v for k, v in tuned.as_dict().items() if k != "run_dir"
    })  # fmt: skip
    return tuned


def _summary(tune: AdapterSpec, m: dict[str, Any]) -> str:
    def loss(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    return (
        f"{tune.method} on {tune.base}, {m['steps']} steps: train loss {loss(m['train_loss'])}, "
        f"eval loss {loss(m['eval_loss_before'])} -> {loss(m['eval_loss_after'])}"
    )


def model_card(tune: AdapterSpec, base: BaseModel, snap: Any, metrics: dict[str, Any]) -> str:
    lora = tune.lora
    quant = tune.quantization
    lines = [
        f"# {tune.name}",
        "",
        tune.description or "A LoRA adapter trained with `llmops tune`.",
        "",
        f"- base model: `{base.source}` ({tune.base})",
        f"- method: {tune.method}"
        + (f" ({quant.bits}-bit {quant.quant_type if quant.bits == 4 else 'int8'} base)" if quant else ""),
        f"- LoRA: r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, "
        f"targets={lora.target_modules or 'peft default'}",
        f"- dataset: `{snap.ref}` ({snap.content_hash[:19]}...)",
        f"- steps: {metrics['steps']}, tokens: {metrics['tokens']}, {metrics['tokens_per_s']} tokens/s",
        f"- train loss: {metrics['train_loss']}, eval loss: {metrics['eval_loss_before']} -> "
        f"{metrics['eval_loss_after']}",
        "",
        "Load it with peft: `PeftModel.from_pretrained(base_model, this_folder)`.",
        "",
    ]
    return "\n".join(lines)


# -- Ctrl-C ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Any]:
    """A ``stop()`` poll that turns the first Ctrl-C (or SIGTERM) into "checkpoint and stop".

    A second Ctrl-C interrupts at once. Outside the main thread signals cannot be caught, and
    ``stop()`` is always False there.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested.is_set
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
