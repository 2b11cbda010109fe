"""GPU training throughput and peak memory: ``llmops tune``'s loop against a plain transformers ``Trainer``
+ peft script, bf16 LoRA and 4-bit QLoRA, on the embedded SmolLM2-135M-Instruct (CUDA only).

Same LoRA (r 8, alpha 16, dropout 0.05 on q_proj and v_proj) and hyperparameters as
benchmarks/tune_throughput.py (batch 4, max_seq_len 256, lr 2e-4, cosine), on the sample project's
conversations, no eval, no checkpoints. Each run is its own process, so ``torch.cuda.max_memory_allocated``
is its own peak. tokens/s counts real (non-pad) tokens over the steps after the warm-up.

Runs: llmops-lora-bf16 (packing), trainer-lora-bf16 (``bf16=True``, padded random batches), and the
same two with a 4-bit nf4 base (bitsandbytes CUDA kernels, double quant, bf16 compute):
llmops-qlora-4bit and trainer-qlora-4bit (``prepare_model_for_kbit_training``). Prints a table and the
llmops/Trainer ratios; ``--json PATH`` writes the figures.

    python benchmarks/gpu_tune.py [--steps 30] [--warmup 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNS = ("llmops-lora-bf16", "trainer-lora-bf16", "llmops-qlora-4bit", "trainer-qlora-4bit")


def _cpu_bench() -> Any:
    """benchmarks/tune_throughput.py (data, LoRA and hyperparameters are shared with it)."""
    spec = importlib.util.spec_from_file_location("tune_throughput", ROOT / "benchmarks" / "tune_throughput.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_llmops(qlora: bool, steps: int, warmup: int) -> dict[str, Any]:
    from llmops_cli.tune import LoraSpec, QuantSpec, TrainingSpec, TuneConfig, train
    from llmops_cli.tune.modeling import BaseModel

    bench = _cpu_bench()
    lora = LoraSpec(**{**bench.LORA, "target_modules": tuple(bench.LORA["target_modules"])})
    training = TrainingSpec(max_steps=warmup + steps, packing=True, warmup_ratio=0.03, save_steps=10_000,
                            logging_steps=1, precision="bf16", **bench.HYPER)  # fmt: skip
    quant = QuantSpec(bits=4) if qlora else None
    tune = TuneConfig(name="bench", base="base", dataset="bench", lora=lora, training=training,
                      method="qlora" if qlora else "lora", quantization=quant)  # fmt: skip
    ends: list[float] = []

    def progress(event: Any) -> None:
        if event.kind == "step":
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as run_dir:
        base = BaseModel("base", "smollm2-135m-instruct", bench.smollm2_folder())
        train(tune, base, bench.load_examples("sample"), [], Path(run_dir), progress=progress)
        lines = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    cumulative = [x["tokens"] for x in lines if "tokens" in x]
    per_step = [b - a for a, b in zip([0, *cumulative], cumulative, strict=False)]
    return _report(bench, ends, per_step, warmup)


def run_trainer(qlora: bool, steps: int, warmup: int) -> dict[str, Any]:
    """The transformers Trainer + peft script a user would write, on the GPU in bf16."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    bench = _cpu_bench()
    folder = bench.smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if qlora:
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)  # fmt: skip
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map={"": 0})
        model = prepare_model_for_kbit_training(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to("cuda")
    lora = bench.LORA
    model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                             target_modules=lora["target_modules"], task_type="CAUSAL_LM"))  # fmt: skip
    texts = [tokenizer.apply_chat_template(e["messages"], tokenize=False) for e in bench.load_examples("sample")]
    dataset = [tokenizer(t, truncation=True, max_length=bench.HYPER["max_seq_len"]) for t in texts]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    batch_tokens: list[int] = []

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collator(features)
        batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    ends: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            torch.cuda.synchronize()
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=bench.HYPER["batch_size"], max_steps=warmup + steps,
            learning_rate=bench.HYPER["learning_rate"], lr_scheduler_type="cosine", warmup_steps=0.03,
            logging_steps=1, save_strategy="no", report_to=[], bf16=True, seed=bench.HYPER["seed"],
            disable_tqdm=True, dataloader_num_workers=0,
        )  # fmt: skip
        Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=[Timer()]).train()
    return _report(bench, ends, batch_tokens[: len(ends)], warmup)


def _report(bench: Any, ends: list[float], tokens: list[int], warmup: int) -> dict[str, Any]:
    import torch

    speed, count, seconds = bench.measured(ends, tokens, warmup)
    return {
        "tokens_per_s": speed,
        "tokens": count,
        "seconds": seconds,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20,
        "gpu": torch.cuda.get_device_name(0),
    }


def child(run: str, steps: int, warmup: int) -> None:
    qlora = "qlora" in run
    result = run_trainer(qlora, steps, warmup) if run.startswith("trainer") else run_llmops(qlora, steps, warmup)
    print("RESULT " + json.dumps(result), flush=True)


def spawn(run: str, steps: int, warmup: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", run, "--steps", str(steps), "--warmup", str(warmup)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="Measured optimizer steps per run.")
    parser.add_argument("--warmup", type=int, default=5, help="Steps before the measurement starts.")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.warmup)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("skipped: no CUDA GPU (torch.cuda.is_available() is False)")
        return 0
    results = {run: spawn(run, args.steps, args.warmup) for run in RUNS}
    print(f"{'run':<20} {'tokens/s':>10} {'peak GPU MB':>12}")
    for run, r in results.items():
        if "error" in r:
            print(f"{run:<20} failed: {r['error']}")
        else:
            print(f"{run:<20} {r['tokens_per_s']:>10.0f} {r['peak_gpu_mb']:>12.0f}")
    for kind in ("lora-bf16", "qlora-4bit"):
        ours, theirs = results[f"llmops-{kind}"], results[f"trainer-{kind}"]
        if "error" not in ours and "error" not in theirs:
            ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
            results[f"ratio-{kind}"] = {"llmops_over_trainer": ratio}
            print(f"{kind}: llmops / Trainer = {ratio:.2f}x tokens/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
