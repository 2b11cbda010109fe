"""llmops tune with several processes: data parallel on the CPU (gloo), resume after SIGKILL of the
whole process group, a dead rank, and FSDP.

Every run goes through the real ``llmops tune --launcher accelerate --num-processes 2`` (accelerate
launch -> torchrun -> two worker processes) on the tiny random Llama of test_tune.

Tolerance of 2 processes vs 1 (same global batch, same seed, dropout 0): the two runs see the same
rows at each step (1 process accumulates the same two micro-batches of 4 that the two ranks take) and
optimize the same global mean loss. The gradients differ only in where they are added: in .grad by
the 1-process run, by gloo's all-reduce in the 2-process one (then DDP's division by 2, undone by a
x2 on the loss: both exact in float). Measured here: bit-identical (0 difference in losses, grad
norms and adapter tensors). The tests still allow 1e-4 relative on losses and 1e-4 absolute on
tensors, because float addition is not associative: with more processes, NCCL's ring all-reduce or
another torch version, the order of the partial sums changes, the gradients move in the last bits
(~1e-7 relative), and AdamW (which divides by sqrt(v) ~ |g| in its first steps) and 12 steps at lr
0.01 amplify that to ~1e-5. A wrong shard (a row missing or trained twice), a wrong normalization (a
mean per process instead of the global one) or another data order moves them by 1e-2 or more.
A run resumed after SIGKILL repeats the same 2-process arithmetic and must match its uninterrupted
twin to 1e-6.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.tuning import CLI_SCRIPT, adapter_tensors, assert_same_tensors, write_project
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow

LOSS_RTOL = 1e-4
TENSOR_ATOL = 1e-4
# Per process batch 4: 2 processes x 1 accumulation = 1 process x 2 accumulations = 8 rows a step.
DP = {"batch_size": 4, "gradient_accumulation_steps": 1}
ONE = {"batch_size": 4, "gradient_accumulation_steps": 2}


def dp_project(root: Path, model_dir: Path, **launcher: Any) -> Path:
    """The tune test project with dropout 0 and two adapters with the same global batch: ``dp`` (for
    2 processes) and ``one`` (1 process).

    48 train rows make 6 full global batches of 8 an epoch. With a short last batch the runs would
    differ by design at each epoch's end: 2 processes top it up from the epoch's start (as torch's
    DistributedSampler), 1 process trains on it as it is.
    """
    write_project(root, model_dir, rows=58)  # 58 rows: 48 train, 10 eval with eval_split 0.2 and seed 7
    doc = yaml.safe_load((root / "llmops.yaml").read_text())
    lora = {**doc["adapters"]["a-lora"]["lora"], "dropout": 0.0}
    training = doc["adapters"]["a-lora"]["training"]
    doc["adapters"] = {
        "dp": {"base": "tiny", "dataset": "chats", "lora": lora, "training": {**training, **DP},
               "launcher": {"type": "accelerate", "num_processes": 2, **launcher}},
        "one": {"base": "tiny", "dataset": "chats", "lora": lora, "training": {**training, **ONE}},
    }  # fmt: skip
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    subprocess.run(["git", "commit", "-qam", "dp"], cwd=root, check=True)
    return root


def llmops(cwd: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", CLI_SCRIPT, *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL) if _own_group(process) else process.kill()
        out, err = process.communicate()
        pytest.fail(f"llmops tune hung for {timeout} s:\n{err[-3000:]}")
    return process.returncode, out, err


def _own_group(process: subprocess.Popen[str]) -> bool:
    try:
        return os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return False


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def registered(root: Path, adapter: str) -> list[str]:
    tags = subprocess.run(["git", "tag", "--list", f"adapter/{adapter}/*"], cwd=root, capture_output=True, text=True)
    return tags.stdout.split()


def wait_for(predicate: Any, process: subprocess.Popen[str], timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before the test could act:\n"
                        f"{process.stderr.read()[-3000:] if process.stderr else ''}")  # fmt: skip
        if time.time() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("timed out waiting for the run")
        time.sleep(0.05)


def worker_pids(root: Path) -> dict[int, int]:
    """rank -> pid of the training processes of the project at ``root`` (read from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"llmops_cli.tune.worker" in cmdline and str(root).encode() in cmdline:
            ranks = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"RANK=")]
            if ranks:
                found[int(ranks[0])] = int(entry.name)
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads worker ranks from /proc")


# --- 2 processes vs 1 ------------------------------------------------------------------------------------


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path: Path, untied_llama_dir: Path) -> None:
    """Done-when: the loss curve and the final adapter of 2 CPU processes match 1 process (module docstring)."""
    root = dp_project(tmp_path / "proj", untied_llama_dir)
    code, out, err = finish(llmops(root, "tune", "dp", "--json"))
    assert code == 0, err[-3000:]
    two = json.loads(out)
    assert "--num_processes 2" in err and two["version"] == "adapter/dp/v1"
    code, out, err = finish(llmops(root, "tune", "one", "--json"))
    assert code == 0, err[-3000:]
    one = json.loads(out)

    run2, run1 = Path(two["run_dir"]), Path(one["run_dir"])
    assert json.loads((run2 / "train_config.json").read_text())["runtime"]["num_processes"] == 2
    assert json.loads((run1 / "train_config.json").read_text())["runtime"]["num_processes"] == 1
    curve2, curve1 = metrics(run2), metrics(run1)
    worst = {k: max((abs(a[k] - b[k]) / abs(b[k]) for a, b in zip(curve2, curve1, strict=True) if k in b), default=0.0)
             for k in ("loss", "eval_loss", "grad_norm")}  # fmt: skip
    t2, t1 = adapter_tensors(run2 / "adapter"), adapter_tensors(run1 / "adapter")
    print(f"2 vs 1 process: max relative difference {worst}, max tensor difference "
          f"{max(float((t2[k] - t1[k]).abs().max()) for k in t1):.2e}")  # fmt: skip
    # The main process alone writes metrics: one line per logged step, none twice.
    assert [m["step"] for m in curve2] == [m["step"] for m in curve1]
    assert len({(m["step"], "loss" in m) for m in curve2}) == len(curve2)
    for a, b in zip(curve2, curve1, strict=True):
        for key in ("loss", "eval_loss", "grad_norm"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=LOSS_RTOL), (key, a["step"])
        if "tokens" in b:
            assert a["tokens"] == b["tokens"]  # the same rows were trained on, no more, no fewer
    assert_same_tensors(adapter_tensors(run2 / "adapter"), adapter_tensors(run1 / "adapter"), atol=TENSOR_ATOL)
    # Each process saved its RNG state into the shared checkpoint; the weights are written once.
    assert {p.name for p in (run2 / "checkpoint-8").glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert registered(root, "dp") == ["adapter/dp/v1"]


# --- SIGKILL of the whole group, then --resume --------------------------------------------------------------


def test_sigkill_of_the_process_group_then_resume(tmp_path: Path, untied_llama_dir: Path) -> None:
    """Done-when: a 2-process run killed with SIGKILL (every process) resumes both ranks where it was."""
    root = dp_project(tmp_path / "proj", untied_llama_dir)
    steps = "60"  # long enough to be killed mid-run: a checkpoint every 4 steps
    process = llmops(root, "tune", "dp", "--max-steps", steps, start_new_session=True)
    runs = root / ".llmops" / "runs" / "dp"
    wait_for(lambda: any((p / "trainer_state.json").is_file() for p in runs.glob("*/checkpoint-*")), process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    time.sleep(0.5)
    assert worker_pids(root) == {}  # the whole group is gone
    (killed,) = runs.iterdir()
    info = json.loads((killed / "run.json").read_text())
    assert info["status"] == "running" and "result" not in info and registered(root, "dp") == []

    code, out, err = finish(llmops(root, "tune", "dp", "--resume", "--json"))
    assert code == 0, err[-3000:]
    resumed = json.loads(out)
    assert resumed["run_dir"] == str(killed) and resumed["resumed_from"] and resumed["resumed_from"] % 4 == 0
    assert resumed["metrics"]["steps"] == int(steps)

    code, out, err = finish(llmops(root, "tune", "dp", "--max-steps", steps, "--json"))
    assert code == 0, err[-3000:]
    fresh = json.loads(out)
    assert fresh["version"] == "adapter/dp/v2"
    assert_same_tensors(adapter_tensors(killed / "adapter"), adapter_tensors(Path(fresh["run_dir"]) / "adapter"))
    assert resumed["metrics"]["eval_loss_after"] == pytest.approx(fresh["metrics"]["eval_loss_after"], rel=1e-6)
    assert resumed["metrics"]["tokens"] == fresh["metrics"]["tokens"]  # both ranks resumed at the right rows
    assert [m["step"] for m in metrics(killed)] == [m["step"] for m in metrics(Path(fresh["run_dir"]))]


# --- one rank dies ---------------------------------------------------------------------------------------


@needs_proc
def test_a_dead_rank_fails_the_run_without_hanging_or_registering(tmp_path: Path, untied_llama_dir: Path) -> None:
    root = dp_project(tmp_path / "proj", untied_llama_dir, timeout_s=60)
    process = llmops(root, "tune", "dp", "--max-steps", "100000", start_new_session=True)
    runs = root / ".llmops" / "runs" / "dp"
    wait_for(lambda: any(runs.glob("*/checkpoint-*")) and len(worker_pids(root)) == 2, process)
    os.kill(worker_pids(root)[1], signal.SIGKILL)
    started = time.time()
    code, _, err = finish(process, timeout=120)
    assert code == 1, err[-3000:]
    assert time.time() - started < 60  # the survivor notices at its next collective, not at the timeout
    assert "lost the others in a collective" in err and "rank      : 1" in err
    assert "nothing was registered" in err and "--resume" in err
    assert "Traceback" not in err
    (run_dir,) = runs.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert registered(root, "dp") == [] and worker_pids(root) == {}


@needs_proc
def test_a_hung_rank_fails_the_run_at_the_collective_timeout(tmp_path: Path, untied_llama_dir: Path) -> None:
    """A process that stops answering (SIGSTOP) must not leave the other waiting forever: launcher.timeout_s."""
    root = dp_project(tmp_path / "proj", untied_llama_dir, timeout_s=15)
    process = llmops(root, "tune", "dp", "--max-steps", "100000", start_new_session=True)
    runs = root / ".llmops" / "runs" / "dp"
    wait_for(lambda: any(runs.glob("*/checkpoint-*")) and len(worker_pids(root)) == 2, process)
    hung = worker_pids(root)[1]
    os.kill(hung, signal.SIGSTOP)
    started = time.time()
    try:
        code, _, err = finish(process, timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGKILL)
    assert code == 1, err[-3000:]
    assert 14 <= time.time() - started < 150
    assert "lost the others in a collective" in err and "nothing was registered" in err
    (run_dir,) = runs.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed" and registered(root, "dp") == []


def test_ctrl_c_checkpoints_every_process_and_exits_130(tmp_path: Path, untied_llama_dir: Path) -> None:
    """Ctrl-C reaches the launcher's group; both processes stop at the same step after one checkpoint."""
    root = dp_project(tmp_path / "proj", untied_llama_dir)
    process = llmops(root, "tune", "dp", "--max-steps", "100000", start_new_session=True)
    runs = root / ".llmops" / "runs" / "dp"
    wait_for(lambda: any((p / "trainer_state.json").is_file() for p in runs.glob("*/checkpoint-*")), process)
    os.killpg(process.pid, signal.SIGINT)
    code, _, err = finish(process, timeout=120)
    assert code == 130, err[-3000:]
    assert "llmops tune dp --resume --launcher accelerate --num-processes 2" in err
    assert err.count("was interrupted") == 1 and "Traceback" not in err
    (run_dir,) = runs.iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted"
    last = run_dir / info["last_checkpoint"]
    assert {p.name for p in last.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}


# --- FSDP ----------------------------------------------------------------------------------------------

FSDP_CONFIG = """\
compute_environment: LOCAL_MACHINE
distributed_type: FSDP
num_machines: 1
num_processes: {processes}
mixed_precision: 'no'
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_reshard_after_forward: true
  fsdp_cpu_ram_efficient_loading: false
  fsdp_offload_params: false
"""


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="checks the refusal on a CPU-only machine")
def test_fsdp_is_refused_on_a_cpu_only_machine(tmp_path: Path, untied_llama_dir: Path) -> None:
    """accelerate runs FSDP on GPU process groups only (see launcher.check_engine): say so, train nothing."""
    root = dp_project(tmp_path / "proj", untied_llama_dir)
    (root / "fsdp.yaml").write_text(FSDP_CONFIG.format(processes=2))
    code, _, err = finish(llmops(root, "tune", "dp", "--accelerate-config", "fsdp.yaml"), timeout=120)
    assert code == 2, err[-3000:]
    assert "FSDP" in err and "no CUDA GPU" in err and "--num-processes 2" in err
    assert not (root / ".llmops" / "runs").exists() and registered(root, "dp") == []


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_count() == 0, reason="accelerate runs FSDP on GPUs only (needs CUDA)")
def test_fsdp_checkpoints_through_save_state_and_resume(tmp_path: Path, untied_llama_dir: Path) -> None:
    """FSDP2 on every GPU here: checkpoints via accelerator.save_state, SIGKILL + --resume matches an
    uninterrupted run, and the adapter gathered to the main process loads with plain peft."""
    processes = _cuda_count()
    root = dp_project(tmp_path / "proj", untied_llama_dir)
    doc = yaml.safe_load((root / "llmops.yaml").read_text())
    doc["adapters"]["dp"]["training"]["precision"] = "fp32"
    doc["adapters"]["dp"]["launcher"] = {"type": "accelerate", "num_processes": processes, "config_file": "fsdp.yaml"}
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (root / "fsdp.yaml").write_text(FSDP_CONFIG.format(processes=processes))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "fsdp"], cwd=root, check=True)

    steps = "40"
    process = llmops(root, "tune", "dp", "--max-steps", steps, start_new_session=True)
    runs = root / ".llmops" / "runs" / "dp"
    wait_for(lambda: any((p / "trainer_state.json").is_file() for p in runs.glob("*/checkpoint-*")), process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    (killed,) = runs.iterdir()
    checkpoint = next(killed.glob("checkpoint-*"))
    assert (checkpoint / "accelerate_state").is_dir() and not (checkpoint / "optimizer.pt").exists()

    code, out, err = finish(llmops(root, "tune", "dp", "--resume", "--json"))
    assert code == 0, err[-3000:]
    resumed = json.loads(out)
    assert resumed["resumed_from"] and resumed["metrics"]["steps"] == int(steps)
    code, out, err = finish(llmops(root, "tune", "dp", "--max-steps", steps, "--json"))
    assert code == 0, err[-3000:]
    fresh = Path(json.loads(out)["run_dir"])
    assert_same_tensors(adapter_tensors(killed / "adapter"), adapter_tensors(fresh / "adapter"), atol=TENSOR_ATOL)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(untied_llama_dir), str(killed / "adapter"))
    lora = {k: v for k, v in model.state_dict().items() if "lora_B" in k}
    assert lora and all(torch.isfinite(v).all() and v.abs().sum() > 0 for v in lora.values())
