"""Training runs and their checkpoints under ``.llmops/runs/<adapter>/<run-id>/``.

A run folder holds ``run.json`` (status, settings, lineage), ``metrics.jsonl``, ``checkpoint-<step>/``
folders and, when finished, ``adapter/`` (the PEFT folder) with the training curve. A checkpoint holds
the LoRA weights, the optimizer and scheduler states, each process's RNG states and
``trainer_state.json`` (step, data position, losses so far). It is written into a temporary folder and
renamed into place, and ``trainer_state.json`` is written last, so a run killed while saving leaves no
half checkpoint that ``--resume`` would trust.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import random
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops_cli.errors import UsageError
from llmops_cli.filenames import ADAPTER_WEIGHTS
from llmops_cli.paths import STATE_DIR, atomic_write_text

RUN_FILE = "run.json"
STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = ADAPTER_WEIGHTS
SHARDED_DIR = "accelerate_state"  # accelerator.save_state() output, FSDP/DeepSpeed runs
KEEP_CHECKPOINTS = 2  # the newest two: if the last one is damaged on disk, the one before still works
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

# -- runs -----------------------------------------------------------------------------------------------


def runs_dir(project_root: Path, adapter: str) -> Path:
    return project_root / STATE_DIR / "runs" / adapter


def new_run_dir(project_root: Path, adapter: str) -> Path:
    """A fresh run folder; ids sort by start time, so the newest run is the last one."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir(project_root, adapter) / f"{stamp}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    return run_dir


def read_run(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_run(run_dir: Path, **fields: Any) -> dict[str, Any]:
    data = {**read_run(run_dir), **fields, "updated": _now()}
    atomic_write_text(run_dir / RUN_FILE, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return data


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def resumable_run(project_root: Path, adapter: str) -> Path | None:
    """The newest run of ``adapter`` that did not finish (interrupted, killed or failed)."""
    base = runs_dir(project_root, adapter)
    if not base.is_dir():
        return None
    for run_dir in sorted((p for p in base.iterdir() if p.is_dir()), reverse=True):
        info = read_run(run_dir)
        if info and info.get("status") != "finished":
            return run_dir
    return None


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run for this process; a second ``llmops tune --resume`` on it fails instead of racing."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; runs are still written atomically
        yield
        return
    with open(run_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(
                f"Run {run_dir.name} is being trained by another process.",
                hint="Wait for it to finish, or stop it (Ctrl-C saves a checkpoint) and resume.",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- checkpoints ----------------------------------------------------------------------------------------


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    found = []
    for path in run_dir.iterdir() if run_dir.is_dir() else []:
        match = _CHECKPOINT.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match[1]), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(
    run_dir: Path, step: int, *, model: Any, optimizer: Any, scheduler: Any, accelerator: Any, state: dict[str, Any]
) -> Path:
    """Write ``checkpoint-<step>`` (every process calls this; the main one writes the shared files)."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    final = run_dir / f"checkpoint-{step}"
    tmp = run_dir / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng_state_{accelerator.process_index}.pth")
    if is_sharded(accelerator):
        # FSDP / DeepSpeed: weights and optimizer states live in shards across the processes; every
        # process writes its part through accelerate (the scheduler is not prepared by accelerate).
        accelerator.save_state(str(tmp / SHARDED_DIR))
        if accelerator.is_main_process:
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    elif accelerator.is_main_process:
        weights = get_peft_model_state_dict(accelerator.unwrap_model(model))
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / WEIGHTS_FILE))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        payload = {**state, "step": step, "world_size": accelerator.num_processes}
        atomic_write_text(tmp / STATE_FILE, json.dumps(payload, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for _old_step, old in checkpoints(run_dir)[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    checkpoint: Path, *, model: Any, optimizer: Any, scheduler: Any, accelerator: Any
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and this process's RNG; returns ``trainer_state.json``."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state: dict[str, Any] = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    if state.get("world_size", 1) != accelerator.num_processes:
        raise UsageError(
            f"{checkpoint} was written by {state.get('world_size')} process(es); this run has "
            f"{accelerator.num_processes}.",
            hint="Resume with the same --num-processes: the data order depends on it.",
        )
    # A gloo (CPU) process's device is "cpu:<rank>", which safetensors and torch.load refuse; CPU memory is one.
    device = "cpu" if accelerator.device.type == "cpu" else str(accelerator.device)
    if is_sharded(accelerator):
        if not (checkpoint / SHARDED_DIR).is_dir():
            raise UsageError(
                f"{checkpoint} was written without FSDP/DeepSpeed; this run uses {accelerator.distributed_type}.",
                hint="Resume with the accelerate config the run started with.",
            )
        accelerator.load_state(str(checkpoint / SHARDED_DIR))
        scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
        restore_rng_state(torch.load(checkpoint / f"rng_state_{accelerator.process_index}.pth", weights_only=False))
        return state
    weights = load_file(str(checkpoint / WEIGHTS_FILE), device=device)
    set_peft_model_state_dict(accelerator.unwrap_model(model), weights)
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    restore_rng_state(torch.load(checkpoint / f"rng_state_{accelerator.process_index}.pth", weights_only=False))
    return state


def is_sharded(accelerator: Any) -> bool:
    """FSDP or DeepSpeed: no process holds the whole model or optimizer state."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
