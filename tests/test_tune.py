"""llmops tune: formatting and masking, packing, the training loop, checkpoints and exact resume,
Ctrl-C and SIGKILL, QLoRA on the CPU, the dry-run plan, registration, merge and accelerate launch.

Unit tests train a 2-layer random Llama (hidden size 64: bitsandbytes' CPU 4-bit kernels need
in_features divisible by its block size, 64) with the tiny tokenizer of tests/fixtures/models.py. Tests marked
``integration`` use the embedded SmolLM2; ``gpu`` tests need CUDA and skip elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.errors import EXIT_INTERRUPTED, ConfigError, UsageError
from llmops_cli.tune.batching import Schedule
from llmops_cli.tune.formatting import (
    IGNORE_INDEX,
    TokenizedExample,
    as_rows,
    collate,
    pack_rows,
    tokenize_example,
    tokenize_examples,
)
from llmops_cli.tune.spec import LoraSpec, QuantSpec, TrainingSpec, TuneConfig
from tests.fixtures.tuning import (
    ANSWER,
    CLI_SCRIPT,
    TRAINING,
    adapter_tensors,
    assert_same_tensors,
    chat,
    examples,
    write_project,
)
from tests.helpers import REPO_ROOT, SAMPLE_PROJECT, git

# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def tune_project(tmp_path: Path, untied_llama_dir: Path) -> Path:
    return write_project(tmp_path / "proj", untied_llama_dir)


def tune_config(dropout: float = 0.1, **training: Any) -> TuneConfig:
    spec = {**TRAINING, **training}
    lora = LoraSpec(r=4, alpha=8, dropout=dropout, target_modules=("q_proj", "v_proj"))
    return TuneConfig(name="t", base="tiny", dataset="d", lora=lora, training=TrainingSpec(**spec))


def base_of(folder: Path) -> Any:
    from llmops_cli.tune.modeling import BaseModel

    return BaseModel("tiny", str(folder), folder)


def run_cli_subprocess(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-c", CLI_SCRIPT, *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- settings ------------------------------------------------------------------------------------------


def test_defaults_match_the_schema() -> None:
    schema = json.loads((REPO_ROOT / "schemas" / "llmops.schema.json").read_text())["$defs"]
    pairs = [(LoraSpec(), "lora"), (QuantSpec(), "adapter_quantization"), (TrainingSpec(), "training")]
    for spec, name in pairs:
        for key, prop in schema[name]["properties"].items():
            if "default" in prop:
                assert getattr(spec, key) == prop["default"], f"{name}.{key}"


def test_parse_sample_project_adapters() -> None:
    from llmops_cli.tune import parse_tune_config
    from llmops_cli.validation import load_config

    config = load_config(SAMPLE_PROJECT)
    qlora = parse_tune_config(config, "support-lora")
    assert qlora.method == "qlora" and qlora.quantization == QuantSpec(bits=4, quant_type="nf4", double_quant=True)
    assert qlora.lora.target_modules == ("q_proj", "v_proj") and qlora.lora.r == 8
    t = qlora.training
    assert (t.max_steps, t.batch_size, t.max_seq_len, t.packing, t.lr_scheduler) == (30, 4, 256, True, "cosine")
    lora = parse_tune_config(config, "support-lora-fp")
    assert lora.method == "lora" and lora.quantization is None
    assert qlora.with_max_steps(3).training.max_steps == 3 and qlora.with_max_steps(None) is qlora
    with pytest.raises(UsageError, match="no adapter 'nope'"):
        parse_tune_config(config, "nope")


def test_parse_rejects_unusable_entries(tmp_path: Path, untied_llama_dir: Path) -> None:
    import yaml

    from llmops_cli.tune import parse_tune_config
    from llmops_cli.validation import load_config

    root = write_project(tmp_path / "p", untied_llama_dir)
    doc = yaml.safe_load((root / "llmops.yaml").read_text())
    doc["adapters"]["a-lora"]["quantization"] = {"bits": 4}
    (root / "docs").mkdir()
    doc["datasets"]["docs"] = {"path": "docs/", "format": "documents"}
    doc["adapters"]["a-docs"] = {"base": "tiny", "dataset": "docs"}
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc))
    config = load_config(root)
    for name, message in [("a-lora", "only used with method: qlora"), ("a-docs", "holds no training records")]:
        with pytest.raises(ConfigError, match=message):
            parse_tune_config(config, name)


# --- formatting ----------------------------------------------------------------------------------------


def _target_text(tokenizer: Any, item: TokenizedExample) -> str:
    return tokenizer.decode([t for t, label in zip(item.input_ids, item.labels, strict=True) if label != IGNORE_INDEX])


def test_loss_is_on_assistant_tokens_only(tiny_tokenizer: Any) -> None:
    item = tokenize_example(chat("hello world", system="be brief"), tiny_tokenizer, 256)
    assert _target_text(tiny_tokenizer, item) == ANSWER + "</s>\n"  # the answer and its end-of-turn
    assert tiny_tokenizer.decode(item.input_ids) == tiny_tokenizer.apply_chat_template(
        chat("hello world", system="be brief")["messages"], tokenize=False
    )
    turns = {"messages": [
        {"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"},
        {"role": "user", "content": "how are you"}, {"role": "assistant", "content": "paris"},
    ]}  # fmt: skip
    two = tokenize_example(turns, tiny_tokenizer, 256)
    assert _target_text(tiny_tokenizer, two) == "world</s>\nparis</s>\n"


def test_generation_blocks_use_the_assistant_mask(tiny_tokenizer: Any) -> None:
    import copy

    tok = copy.deepcopy(tiny_tokenizer)  # a copy: the shared fixture keeps its template
    tok.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}{% generation %}"
        "{{ m['content'] }}</s>\n{% endgeneration %}{% else %}{{ m['content'] }}</s>\n{% endif %}{% endfor %}"
    )
    masked = tokenize_example(chat("hello world"), tok, 256)
    assert _target_text(tok, masked) == ANSWER + "</s>\n"


def test_text_examples_train_on_every_token_and_end_with_eos(tiny_tokenizer: Any) -> None:
    item = tokenize_example({"text": "hello world"}, tiny_tokenizer, 256)
    assert item.labels == item.input_ids and item.input_ids[-1] == tiny_tokenizer.eos_token_id


def test_truncation_and_examples_without_targets(tiny_tokenizer: Any) -> None:
    long_question = chat("hello world " * 30)
    fits = len(tokenize_example(chat("hi"), tiny_tokenizer, 10_000).input_ids)
    items, stats = tokenize_examples([long_question, chat("hi")], tiny_tokenizer, fits)
    assert stats.truncated == 1 and stats.dropped == 1 and len(items) == 1  # its answer was cut off entirely
    with pytest.raises(UsageError, match="'messages' or 'text'"):
        tokenize_example({"prompt": "x"}, tiny_tokenizer, 16)


def test_packing_never_splits_and_masks_boundaries(tiny_tokenizer: Any) -> None:
    items, _ = tokenize_examples(examples(30), tiny_tokenizer, 128)
    rows = pack_rows(items, 128)
    assert len(rows) < len(items) and all(len(r.input_ids) <= 128 for r in rows)
    assert sum(r.num_examples for r in rows) == len(items)
    assert sum(r.num_targets for r in rows) == sum(i.num_targets for i in items)  # no target lost or added
    for row in rows:
        assert row.position_ids is not None
        starts = [i for i, p in enumerate(row.position_ids) if p == 0]
        assert len(starts) == row.num_examples and all(row.labels[i] == IGNORE_INDEX for i in starts)
    batch = collate(rows[:3], tiny_tokenizer.pad_token_id)
    assert "attention_mask" not in batch and batch["position_ids"].shape == batch["input_ids"].shape


def test_packed_loss_equals_unpacked_loss(untied_llama_dir: Path, tiny_tokenizer: Any) -> None:
    """Position ids that restart make transformers isolate the packed examples: same loss, exactly.

    (Only without a KV cache: with one, transformers skips the packed-sequence mask. Training never
    uses one, and the trainer passes use_cache=False.)
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(untied_llama_dir).eval()
    items, _ = tokenize_examples(examples(8), tiny_tokenizer, 64)

    def summed_loss(rows: list[Any]) -> float:
        batch = collate(rows, tiny_tokenizer.pad_token_id)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        with torch.no_grad():
            logits = model(**inputs, use_cache=False).logits[:, :-1]
        targets = batch["labels"][:, 1:]
        return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                       ignore_index=IGNORE_INDEX, reduction="sum"))  # fmt: skip

    packed = pack_rows(items, 128)
    assert any(r.num_examples > 1 for r in packed)
    assert summed_loss(packed) == pytest.approx(summed_loss(as_rows(items)), rel=1e-5)


# --- data order ----------------------------------------------------------------------------------------


def test_schedule_is_deterministic_and_covers_each_epoch() -> None:
    t = TrainingSpec(batch_size=3, epochs=2, gradient_accumulation_steps=2, seed=5)
    schedule = Schedule.build(10, t)
    assert (schedule.micro_per_epoch, schedule.steps_per_epoch, schedule.total_steps) == (4, 2, 4)
    epoch0 = [i for m in range(4) for i in schedule.rows_for(m)]
    epoch1 = [i for m in range(4, 8) for i in schedule.rows_for(m)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(10)) and epoch0 != epoch1
    assert [Schedule.build(10, t).rows_for(m) for m in range(8)] == [schedule.rows_for(m) for m in range(8)]
    two = Schedule.build(10, t, world_size=2)
    per_rank = [two.rows_for(1, rank) for rank in (0, 1)]
    assert not set(per_rank[0]) & set(per_rank[1]) and all(len(r) == 3 for r in per_rank)
    assert all(len(two.rows_for(m, rank)) == 3 for m in range(two.micro_per_epoch) for rank in (0, 1))


def test_schedule_batches_rows_of_similar_length() -> None:
    import random

    lengths = [random.Random(i).randint(10, 250) for i in range(400)]
    t = TrainingSpec(batch_size=4, epochs=2)
    grouped, plain = Schedule.build(400, t, lengths=lengths), Schedule.build(400, t)
    for epoch in (0, 1):
        micro = range(epoch * 100, (epoch + 1) * 100)
        assert sorted(i for m in micro for i in grouped.rows_for(m)) == list(range(400))

    def padding(schedule: Schedule) -> int:
        batches = [[lengths[i] for i in schedule.rows_for(m)] for m in range(100)]
        return sum(max(b) * len(b) - sum(b) for b in batches)

    assert padding(grouped) < padding(plain) / 5
    assert grouped.rows_for(0) != Schedule.build(400, TrainingSpec(batch_size=4, seed=1), lengths=lengths).rows_for(0)


# --- training ------------------------------------------------------------------------------------------


def _train(folder: Path, run_dir: Path, tune: TuneConfig, rows: int = 40, **kwargs: Any) -> Any:
    from llmops_cli.tune import train

    run_dir.mkdir(parents=True, exist_ok=True)
    return train(tune, base_of(folder), examples(rows), examples(10, start=100), run_dir, **kwargs)


def test_lora_training_lowers_eval_loss_and_writes_checkpoints(untied_llama_dir: Path, tmp_path: Path) -> None:
    events: list[Any] = []
    result = _train(untied_llama_dir, tmp_path / "run", tune_config(), progress=events.append)
    assert result.eval_loss_after < result.eval_loss_before
    assert result.steps == result.total_steps == 12 and result.tokens > 0 and result.trainable_params == 2048
    assert {e.kind for e in events} >= {"phase", "start", "step", "eval", "checkpoint", "done"}
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(1, 13)) and all(e.lr is not None and e.loss for e in steps)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [2, 4, 6, 8, 10, 12]
    assert lines[0] == {"step": 0, "eval_loss": result.eval_loss_before}
    assert all(x["grad_norm"] > 0 and x["tokens_per_s"] > 0 for x in lines if "loss" in x)
    kept = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-8"]  # the last two; none at the final step
    assert {p.name for p in (tmp_path / "run" / "checkpoint-8").iterdir()} == {
        "adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state_0.pth", "trainer_state.json",
    }  # fmt: skip


def test_gradient_accumulation_matches_one_bigger_batch(untied_llama_dir: Path, tmp_path: Path) -> None:
    """The loss of a step is a mean over all its target tokens, however many micro-batches carry them."""

    def first_step(run: str, **training: Any) -> dict[str, Any]:
        tune = tune_config(dropout=0.0, max_steps=1, logging_steps=1, **training)
        _train(untied_llama_dir, tmp_path / run, tune, rows=4)  # 4 rows: the first step sees all of them
        return [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()][1]

    one = first_step("a", batch_size=4)
    two = first_step("b", batch_size=2, gradient_accumulation_steps=2)
    assert one["loss"] == pytest.approx(two["loss"], rel=1e-5)
    assert one["grad_norm"] == pytest.approx(two["grad_norm"], rel=1e-4)  # the gradient, before clipping


def test_stop_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(
    untied_llama_dir: Path, tmp_path: Path
) -> None:
    from llmops_cli.tune import TrainingInterrupted

    full = _train(untied_llama_dir, tmp_path / "full", tune_config(packing=True))
    seen: list[int] = []

    def record(event: Any) -> None:
        if event.kind == "step":
            seen.append(event.step)

    with pytest.raises(TrainingInterrupted, match="stopped at step 5/12") as stopped:
        _train(
            untied_llama_dir, tmp_path / "cut", tune_config(packing=True), progress=record, stop=lambda: len(seen) >= 5
        )
    assert stopped.value.exit_code == EXIT_INTERRUPTED and "--resume" in (stopped.value.hint or "")
    assert (tmp_path / "cut" / "checkpoint-5" / "trainer_state.json").is_file()
    resumed = _train(untied_llama_dir, tmp_path / "cut", tune_config(packing=True), resume=True)
    assert resumed.resumed_from == 5 and resumed.steps == 12
    assert resumed.eval_loss_before == full.eval_loss_before  # restored from the checkpoint
    assert_same_tensors(adapter_tensors(full.adapter_dir), adapter_tensors(resumed.adapter_dir))

    def logged(run: str) -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in x.items() if k != "tokens_per_s"} for x in lines]  # timings differ

    cut, full_log = logged("cut"), logged("full")
    assert len(cut) == len(full_log)
    for a, b in zip(cut, full_log, strict=True):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-6) for k in a), (a, b)


def test_qlora_trains_on_the_cpu(untied_llama_dir: Path, tmp_path: Path) -> None:
    """bitsandbytes >= 0.49 runs 4-bit (nf4, fp4) and 8-bit layers on the CPU, forward and backward."""
    import dataclasses

    for quant in (QuantSpec(bits=4, quant_type="nf4"), QuantSpec(bits=4, quant_type="fp4", double_quant=False),
                  QuantSpec(bits=8)):  # fmt: skip
        tune = dataclasses.replace(tune_config(max_steps=8), method="qlora", quantization=quant)
        run = tmp_path / f"{quant.bits}-{quant.quant_type}"
        result = _train(untied_llama_dir, run, tune)
        assert result.eval_loss_after < result.eval_loss_before, quant
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        # Evals run between steps: training after them must still get gradients (see keep_4bit_trainable).
        assert all(x["grad_norm"] > 0 for x in lines if "grad_norm" in x), quant


# --- pipeline and CLI ----------------------------------------------------------------------------------


def test_tune_registers_a_peft_adapter_with_lineage(cli: Any, tune_project: Path) -> None:
    result = cli("tune", "a-lora", "--json", cwd=tune_project)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["version"] == "adapter/a-lora/v1" and report["metrics"]["steps"] == 12
    assert report["metrics"]["eval_loss_after"] < report["metrics"]["eval_loss_before"]
    folder = tune_project / "artifacts" / "adapter" / "a-lora"
    assert {"adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "training_curve.png",
            "train_config.json", "README.md", "artifact.json"} <= {p.name for p in folder.iterdir()}  # fmt: skip
    assert (folder / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((folder / "artifact.json").read_text())
    from llmops_cli.models import fingerprint, resolve
    from llmops_cli.validation import load_config

    config = load_config(tune_project)
    refs = {i["ref"]: i["hash"] for i in manifest["inputs"]}
    assert refs[str(config.models["tiny"].source)] == fingerprint(resolve(config.models["tiny"], tune_project))
    assert any(ref.startswith("dataset/chats@v") for ref in refs)
    assert manifest["config_hash"] == config.section_hash("adapters", "a-lora")
    assert manifest["params"]["method"] == "lora" and manifest["params"]["lora"]["r"] == 4
    assert set(manifest["metrics"]) >= {"train_loss", "eval_loss_before", "eval_loss_after", "tokens_per_s",
                                        "steps", "runtime_s"}  # fmt: skip
    assert "adapter/a-lora/v1" in git(tune_project, "tag")
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        config.models["tiny"].source
    )
    assert git(tune_project, "status", "--porcelain") == ""  # runs live in the ignored .llmops/

    from llmops_cli.chains.runtime import ProjectRuntime

    assert ProjectRuntime(config).adapter_path("a-lora") == folder  # what chains load


def test_adapter_loads_with_plain_peft_and_changes_the_output(cli: Any, tune_project: Path,
                                                              untied_llama_dir: Path) -> None:  # fmt: skip
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = cli("tune", "a-lora", cwd=tune_project)
    assert result.exit_code == 0
    # Not a terminal: plain progress lines instead of a live bar, ending at the last step.
    import re

    steps = re.findall(
        r"^a-lora: (\d+)/(\d+) \(\d+%\), elapsed [\d:]+, loss ([\d.]+)", result.output, flags=re.MULTILINE
    )
    assert steps and steps[-1][0] == steps[-1][1], result.output
    # The bar's loss at the end is the summary's train loss (both: mean of the last logging window).
    summary = re.search(r"train loss \(last logging window\)\s*│\s*([\d.]+)", result.output)
    assert summary is not None and summary.group(1) == steps[-1][2], result.output
    tokenizer = AutoTokenizer.from_pretrained(untied_llama_dir)
    ids = tokenizer("what is the capital of france?", return_tensors="pt").input_ids
    base = AutoModelForCausalLM.from_pretrained(untied_llama_dir).eval()
    with torch.no_grad():
        before = base(ids).logits
    tuned = PeftModel.from_pretrained(base, str(tune_project / "artifacts" / "adapter" / "a-lora")).eval()
    with torch.no_grad():
        after = tuned(ids).logits
    assert (after - before).abs().max() > 1e-3


def test_dry_run_plans_without_training_or_registering(cli: Any, tune_project: Path) -> None:
    head = git(tune_project, "rev-parse", "HEAD")
    result = cli("tune", "a-qlora", "--dry-run", "--json", cwd=tune_project)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["trainable_params"] == 2048 and 0 < plan["trainable_pct"] < 100
    assert plan["examples_train"] + plan["examples_eval"] == 60 and plan["examples_eval"] > 0
    assert plan["total_steps"] == 12 and plan["steps_per_epoch"] == -(-plan["rows"] // 4)
    assert plan["tokens"] > plan["target_tokens"] > 0
    assert plan["memory"]["total"] == sum(v for k, v in plan["memory"].items() if k != "total")
    assert git(tune_project, "rev-parse", "HEAD") == head and not (tune_project / ".llmops" / "runs").exists()
    table = cli("tune", "a-lora", "--dry-run", "--max-steps", "3", cwd=tune_project)
    assert table.exit_code == 0 and "trainable parameters" in table.stdout and "3 total" in table.stdout


def test_sigkill_then_resume_matches_an_uninterrupted_run(tune_project: Path) -> None:
    """Done-when: a run killed with SIGKILL mid-run is finished by --resume, with the same result."""
    script = (
        "import os, signal, sys\nfrom pathlib import Path\nfrom llmops_cli.validation import load_config\n"
        "from llmops_cli.tune import run_tune\n"
        "def progress(event):\n"
        "    if event.kind == 'step' and event.step == 7:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "run_tune(load_config(Path(sys.argv[1])), 'a-lora', progress=progress)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(tune_project)], env=env, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    from llmops_cli.tune import checkpoints, run_tune
    from llmops_cli.validation import load_config

    config = load_config(tune_project)
    killed = checkpoints.resumable_run(tune_project, "a-lora")
    assert killed is not None and checkpoints.read_run(killed)["status"] == "running"
    assert checkpoints.latest_checkpoint(killed) == killed / "checkpoint-4"
    resumed = run_tune(config, "a-lora", resume=True)
    assert resumed.version == "adapter/a-lora/v1" and resumed.resumed_from == 4 and resumed.run_dir == killed
    fresh = run_tune(config, "a-lora")
    assert fresh.version == "adapter/a-lora/v2"
    assert_same_tensors(adapter_tensors(killed / "adapter"), adapter_tensors(fresh.run_dir / "adapter"))
    assert resumed.metrics["eval_loss_after"] == pytest.approx(fresh.metrics["eval_loss_after"], rel=1e-6)
    with pytest.raises(UsageError, match="no unfinished run"):
        run_tune(config, "a-lora", resume=True)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tune_project: Path) -> None:
    process = run_cli_subprocess(tune_project, "tune", "a-lora", "--max-steps", "100000")
    runs = tune_project / ".llmops" / "runs" / "a-lora"
    deadline = time.time() + 120
    while not list(runs.glob("*/checkpoint-*")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "llmops tune a-lora --resume" in stderr and "checkpoint saved" in stderr
    (run_dir,) = runs.iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and (run_dir / info["last_checkpoint"] / "trainer_state.json").is_file()


def test_resume_refuses_changed_settings(tune_project: Path) -> None:
    import yaml

    from llmops_cli.tune import TrainingInterrupted, run_tune
    from llmops_cli.validation import load_config

    config = load_config(tune_project)
    with pytest.raises(TrainingInterrupted):
        run_tune(config, "a-lora", progress=lambda e: os.kill(os.getpid(), signal.SIGINT)
                 if e.kind == "step" and e.step == 2 else None)  # fmt: skip
    doc = yaml.safe_load((tune_project / "llmops.yaml").read_text())
    doc["adapters"]["a-lora"]["training"]["learning_rate"] = 0.5
    (tune_project / "llmops.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(UsageError, match="changed since run"):
        run_tune(load_config(tune_project), "a-lora", resume=True)


def test_merge_writes_a_full_model_and_guards_qlora(cli: Any, tune_project: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert cli("tune", "a-lora", cwd=tune_project).exit_code == 0
    out = tmp_path / "merged"
    result = cli("tune", "merge", "a-lora", "--output", str(out), "--json", cwd=tune_project)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "adapter/a-lora/v1"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    from llmops_cli.validation import load_config

    source = Path(load_config(tune_project).models["tiny"].source or "")
    ids = torch.tensor([[0, 5, 9, 20, 31]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out).eval()(ids).logits
        base = AutoModelForCausalLM.from_pretrained(source)
        peft = PeftModel.from_pretrained(base, str(tune_project / "artifacts/adapter/a-lora")).eval()(ids).logits
    assert torch.allclose(merged, peft, atol=1e-5)
    again = cli("tune", "merge", "a-lora", "--output", str(out), cwd=tune_project)
    assert again.exit_code == 0  # a folder this command wrote may be replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    refused = cli("tune", "merge", "a-lora", "--output", str(tmp_path / "mine"), cwd=tune_project)
    assert refused.exit_code == 2 and "not overwriting" in refused.stderr

    assert cli("tune", "a-qlora", cwd=tune_project).exit_code == 0
    quantized = cli("tune", "merge", "a-qlora", cwd=tune_project)
    assert quantized.exit_code == 2 and "--dequantize" in quantized.stderr
    dequantized = cli("tune", "merge", "a-qlora", "--dequantize", cwd=tune_project)
    assert dequantized.exit_code == 0, dequantized.output
    assert "full precision" in dequantized.stderr
    assert (tune_project / ".llmops" / "merged" / "a-qlora" / "model.safetensors").is_file()


def test_accelerate_command_line(tmp_path: Path) -> None:
    from llmops_cli.tune import accelerate_command

    cmd = accelerate_command(tmp_path, "a", tmp_path / "run", num_processes=4, resume=True)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "4" and "--multi_gpu" in cmd and "--cpu" not in cmd
    worker = cmd[cmd.index("-m", 3) :]
    assert worker == ["-m", "llmops_cli.tune.worker", "--project", str(tmp_path), "--adapter", "a",
                      "--run-dir", str(tmp_path / "run"), "--resume"]  # fmt: skip
    with_file = accelerate_command(tmp_path, "a", tmp_path, config_file=tmp_path / "fsdp.yaml", use_cpu=True)
    assert with_file[3:5] == ["--config_file", str(tmp_path / "fsdp.yaml")] and "--multi_gpu" not in with_file


def test_accelerate_launch_on_the_cpu(cli: Any, tune_project: Path) -> None:
    result = cli("tune", "a-lora", "--launcher", "accelerate", "--num-processes", "1", "--json",
                      cwd=tune_project)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["version"] == "adapter/a-lora/v1" and report["metrics"]["steps"] == 12
    assert "accelerate.commands.launch" in result.stderr


def test_importing_tune_stays_light(tmp_path: Path) -> None:
    code = "import sys, llmops_cli.tune, llmops_cli.cli.tune\n" + (
        "print(','.join(m for m in ('torch', 'transformers', 'peft', 'accelerate', 'bitsandbytes', 'matplotlib')"
        " if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr


# --- the embedded model and GPUs -------------------------------------------------------------------------


@pytest.mark.integration
def test_sample_project_qlora_steps_with_smollm2(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE_PROJECT, root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "sample")
    plan = cli("tune", "support-lora", "--dry-run", "--json", cwd=root)
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["trainable_params"] == 460_800  # r=8 on q_proj and v_proj of 30 layers
    result = cli("tune", "support-lora", "--max-steps", "2", "--json", cwd=root)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "adapter/support-lora/v1"


gpu = pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_training_on_a_gpu_in_mixed_precision(untied_llama_dir: Path, tmp_path: Path, method: str) -> None:
    import dataclasses

    tune = dataclasses.replace(tune_config(max_steps=6), method=method,
                               quantization=QuantSpec() if method == "qlora" else None)  # fmt: skip
    result = _train(untied_llama_dir, tmp_path / "run", tune)
    assert result.device == "cuda" and result.precision in ("bf16", "fp16")
    assert result.eval_loss_after < result.eval_loss_before


def test_dry_run_shows_processes_shards_and_the_launch_command(cli: Any, tune_project: Path) -> None:
    result = cli("tune", "a-lora", "--dry-run", "--num-processes", "2", "--json", cwd=tune_project)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["launcher"] == "accelerate" and plan["num_processes"] == 2 and plan["effective_batch"] == 8
    # 49 rows, 8 a global micro-batch: 7 micro-batches an epoch, the last one topped up to 4 + 4.
    assert plan["rows"] == 49 and plan["shard_rows"] == [28, 28] and plan["steps_per_epoch"] == 7
    command = plan["command"]
    assert command[command.index("--num_processes") + 1] == "2" and "llmops_cli.tune.worker" in command
    table = cli("tune", "a-lora", "--dry-run", "--num-processes", "2", cwd=tune_project)
    assert table.exit_code == 0 and "process 1" in table.stdout and "accelerate.commands.launch" in table.stdout
    assert "4 per process x 2 processes x 1 accumulated" in table.stdout
    assert not (tune_project / ".llmops" / "runs").exists()


@pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="checks the skips of a CPU-only machine")
def test_gpu_check_skips_every_part_without_a_gpu(tmp_path: Path) -> None:
    env = {**os.environ, "LLMOPS_GPU_CHECK_RESULTS": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "gpu_check.py")], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [p["part"] for p in report["parts"]] == ["gpu tests", "tune", "quantize", "serve", "ddp"]
    assert all(p["status"] == "skipped" and "CUDA" in p["result"] for p in report["parts"])
    assert (tmp_path / "gpu_check.txt").read_text() in done.stdout + "\n"


def test_the_launch_follows_the_options_then_the_adapter(tune_project: Path) -> None:
    from llmops_cli.tune import choose_launch, parse_tune_config
    from llmops_cli.validation import load_config

    cfg = load_config(tune_project)
    spec = parse_tune_config(cfg, "a-lora")
    assert spec.launcher.type == "single"
    assert choose_launch(cfg, spec).kind == "single" and choose_launch(cfg, spec).config_file is None
    implied = choose_launch(cfg, spec, num_processes=3)  # a process count implies accelerate
    assert (implied.kind, implied.num_processes) == ("accelerate", 3)
    assert choose_launch(cfg, spec, launcher="single", num_processes=3).kind == "single"  # unless one is named
    accelerate_file = tune_project / "accelerate.yaml"
    by_file = choose_launch(cfg, spec, config_file=accelerate_file)
    assert by_file.kind == "accelerate" and by_file.config_file == accelerate_file
    assert choose_launch(cfg, spec, launcher="single", config_file=accelerate_file).config_file is None
