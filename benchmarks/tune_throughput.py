"""Training throughput of ``llmops tune`` against a plain transformers ``Trainer`` + peft script.

Same model (the embedded SmolLM2-135M-Instruct, float32 on the CPU), same LoRA (r 8, alpha 16,
dropout 0.05 on q_proj and v_proj), same hyperparameters (batch 4, max_seq_len 256, lr 2e-4, cosine),
no eval, no checkpoints. Each run is its own process (so peak RSS is its own) and trains
``--warmup + --steps`` optimizer steps; tokens/s counts real (non-pad) input tokens over the steps
after the warm-up, from one step's end to the next, so data loading, forward, backward and the
optimizer are all inside the timed span.

Data sets:
  sample    sample-project/data/train.jsonl as it is (114-204 tokens per conversation)
  variable  the same conversations made variable in length: no system prompt on every other one,
            and each answer cut after a seeded random number of its sentences (about 40-200 tokens)

Runs: llmops with packing, llmops with padding (both batch rows of similar length together), and
the Trainer script a user would write (chat template as text, tokenizer truncation, random batches
padded by DataCollatorForLanguageModeling, loss on every token). Prints a table and the ratios:
llmops vs Trainer (goal >= 1.0x) and packing vs padding on variable-length data (goal >= 1.5x).
CPU timings on a shared 2-core machine are noisy: ``--repeats`` runs everything again, interleaved,
and keeps each run's best.

    python benchmarks/tune_throughput.py [--steps 10] [--warmup 2] [--repeats 1] [--data sample,variable]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN_FILE = ROOT / "sample-project" / "data" / "train.jsonl"
HYPER = {"batch_size": 4, "max_seq_len": 256, "learning_rate": 2e-4, "lr_scheduler": "cosine", "seed": 42}
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
RUNS = ("llmops-packing", "llmops-padding", "trainer-padding")


def load_examples(kind: str) -> list[dict[str, Any]]:
    examples = [json.loads(line) for line in TRAIN_FILE.read_text().splitlines() if line.strip()]
    if kind == "sample":
        return examples
    rng = random.Random(0)
    varied = []
    for i, example in enumerate(examples):
        messages = [dict(m) for m in example["messages"] if not (i % 2 and m["role"] == "system")]
        answer = messages[-1]["content"].split(". ")
        messages[-1]["content"] = ". ".join(answer[: rng.randint(1, len(answer))])
        varied.append({"messages": messages})
    return varied


def smollm2_folder() -> Path:
    from llmops_cli.config.project import ModelSpec
    from llmops_cli.models import materialize

    return materialize(ModelSpec(name="base", source="smollm2-135m-instruct"), ROOT)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def measured(step_ends: list[float], step_tokens: list[int], warmup: int) -> tuple[float, int, float]:
    """(tokens/s, tokens, seconds) over the steps after the warm-up ones."""
    seconds = step_ends[-1] - step_ends[warmup - 1]
    tokens = sum(step_tokens[warmup:])
    return tokens / seconds, tokens, seconds


def run_llmops(data: str, packing: bool, steps: int, warmup: int) -> dict[str, Any]:
    from llmops_cli.tune import LoraSpec, TrainingSpec, TuneConfig, train
    from llmops_cli.tune.modeling import BaseModel

    folder = smollm2_folder()
    lora = LoraSpec(**{**LORA, "target_modules": tuple(LORA["target_modules"])})
    training = TrainingSpec(max_steps=warmup + steps, packing=packing, warmup_ratio=0.03, save_steps=10_000,
                            logging_steps=1, **HYPER)  # fmt: skip
    tune = TuneConfig(name="bench", base="base", dataset="bench", lora=lora, training=training)
    ends: list[float] = []

    def progress(event: Any) -> None:
        if event.kind == "step":
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as run_dir:
        base = BaseModel("base", "smollm2-135m-instruct", folder)
        train(tune, base, load_examples(data), [], Path(run_dir), progress=progress)
        lines = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    cumulative = [x["tokens"] for x in lines if "tokens" in x]
    per_step = [b - a for a, b in zip([0, *cumulative], cumulative, strict=False)]
    return _report(ends, per_step, warmup)


def run_trainer(data: str, steps: int, warmup: int) -> dict[str, Any]:
    """A plain transformers Trainer + peft script, the way the docs show it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    folder = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM"))  # fmt: skip
    texts = [tokenizer.apply_chat_template(e["messages"], tokenize=False) for e in load_examples(data)]
    dataset = [tokenizer(t, truncation=True, max_length=HYPER["max_seq_len"]) for t in texts]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    batch_tokens: list[int] = []

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collator(features)
        batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    ends: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=HYPER["batch_size"], max_steps=warmup + steps,
            learning_rate=HYPER["learning_rate"], lr_scheduler_type="cosine", warmup_steps=0.03, logging_steps=1,
            save_strategy="no", report_to=[], use_cpu=True, seed=HYPER["seed"], disable_tqdm=True,
            dataloader_num_workers=0,
        )  # fmt: skip
        Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=[Timer()]).train()
    return _report(ends, batch_tokens[: len(ends)], warmup)


def _report(ends: list[float], tokens: list[int], warmup: int) -> dict[str, Any]:
    speed, count, seconds = measured(ends, tokens, warmup)
    return {"tokens_per_s": speed, "tokens": count, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run == "trainer-padding":
        result = run_trainer(args.data, args.steps, args.warmup)
    else:
        result = run_llmops(args.data, args.run == "llmops-packing", args.steps, args.warmup)
    print("RESULT " + json.dumps(result), flush=True)


def spawn(run: str, data: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", run, "--data", data, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{run} on {data} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="Measured optimizer steps per run.")
    parser.add_argument("--warmup", type=int, default=2, help="Steps before the measurement starts.")
    parser.add_argument("--repeats", type=int, default=1, help="Run everything N times, keep each run's best.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice).")
    parser.add_argument("--data", default="sample,variable", help="Comma-separated: sample, variable.")
    parser.add_argument("--child", dest="run", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        args.data = args.data.split(",")[0]
        child(args)
        return
    datasets = args.data.split(",")
    best: dict[tuple[str, str], dict[str, Any]] = {}
    started = time.perf_counter()
    for _ in range(args.repeats):
        for data in datasets:
            for run in RUNS:
                result = spawn(run, data, args)
                key = (data, run)
                if key not in best or result["tokens_per_s"] > best[key]["tokens_per_s"]:
                    best[key] = result
                print(f"  {data:<9} {run:<16} {result['tokens_per_s']:7.1f} tokens/s", file=sys.stderr, flush=True)
    print(f"\nSmolLM2-135M LoRA on the CPU: {args.warmup} warm-up + {args.steps} measured steps per run, "
          f"best of {args.repeats}, {time.perf_counter() - started:.0f} s in all\n")  # fmt: skip
    print(f"{'data':<10}{'run':<18}{'tokens/s':>10}{'tokens':>9}{'seconds':>9}{'peak RSS MB':>13}")
    for (data, run), r in best.items():
        print(f"{data:<10}{run:<18}{r['tokens_per_s']:>10.1f}{r['tokens']:>9}{r['seconds']:>9.1f}"
              f"{r['peak_rss_mb']:>13.0f}")  # fmt: skip
    print()
    for data in datasets:
        pack, pad, trainer = (best[(data, run)]["tokens_per_s"] for run in RUNS)
        print(f"{data}: llmops (packing) vs Trainer {pack / trainer:.2f}x, llmops (padding) vs Trainer "
              f"{pad / trainer:.2f}x, packing vs padding {pack / pad:.2f}x")  # fmt: skip
    print("goals: llmops vs Trainer >= 1.0x; packing vs padding on variable-length data >= 1.5x")


if __name__ == "__main__":
    main()
