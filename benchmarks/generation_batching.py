"""Batched vs one-at-a-time generation through LocalProvider on the embedded SmolLM2.

The same 32 support questions, greedy, max_new_tokens 32, through one provider (one loaded model):
first one prompt per ``generate`` call, then batches of 8, 16 and 32. Prints wall time, completion
tokens per second and the speed-up over one-at-a-time (goal >= 3x), and checks that every batched
answer equals the one-at-a-time answer. With ``--repeats N`` the modes run interleaved N times and
the fastest run of each counts, so a neighbour process that grabs the CPU for a while (which hurts
torch's threads badly on a 2-core machine) skews every mode alike or none.

    python benchmarks/generation_batching.py [--repeats 3] [--threads N] [--max-new-tokens 32] [--batch-sizes 8,16,32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmops_cli.config.project import ModelSpec  # noqa: E402
from llmops_cli.generation import GenerationParams, GenerationRequest, GenerationResult  # noqa: E402
from llmops_cli.providers import LocalProvider  # noqa: E402

QUESTIONS = [
    "How do I reset my password?",
    "Can I change the email address on my account?",
    "Why was my card declined?",
    "How long does shipping take to Canada?",
    "What is your refund policy?",
    "My order arrived damaged. What should I do?",
    "How do I cancel my subscription?",
    "Do you offer student discounts?",
    "The app crashes when I open settings. Any fix?",
    "How can I download my invoices?",
    "Is two-factor authentication available?",
    "Can I pause my plan instead of cancelling?",
    "Where is my order?",
    "How do I add a team member to my workspace?",
    "What payment methods do you accept?",
    "I was charged twice this month. Can you help?",
    "How do I export my data to CSV?",
    "Can I use the service offline?",
    "What are your support hours?",
    "How do I update my billing address?",
    "Why can't I log in after changing my phone?",
    "Is there a limit on the number of projects I can create?",
    "How do I delete my account permanently?",
    "Can I get a receipt for a past purchase?",
    "Does the premium plan include priority support?",
    "How do I connect the app to my calendar?",
    "What happens to my files if I downgrade?",
    "How do I report a security vulnerability?",
    "Can I transfer my license to another computer?",
    "My discount code does not work. Why?",
    "How do I turn off email notifications?",
    "Is my data encrypted at rest?",
]


def run(
    provider: LocalProvider, requests: list[GenerationRequest], batch_size: int
) -> tuple[float, list[GenerationResult]]:
    started = time.perf_counter()
    if batch_size == 1:  # the obvious alternative: one generate call per prompt
        results = [provider.generate([request])[0] for request in requests]
    else:
        results = provider.with_batch_size(batch_size).generate(requests)
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", default="8,16,32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per mode; the fastest counts")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = ModelSpec(name="smollm2", source="smollm2-135m-instruct", raw={"source": "smollm2-135m-instruct"})
    provider = LocalProvider(spec, Path(tempfile.gettempdir()), device=args.device)
    started = time.perf_counter()
    provider.load()  # materializes the GGUF once (cached under LLMOPS_HOME), then loads it
    load_s = time.perf_counter() - started
    params = GenerationParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    requests = [GenerationRequest(({"role": "user", "content": q},), params) for q in QUESTIONS]
    provider.with_batch_size(8).generate(requests[:8])  # warm-up: first-call allocations, kernels

    print(
        f"SmolLM2-135M-Instruct on {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs; {len(requests)} prompts, greedy, max_new_tokens {args.max_new_tokens}; "
        f"model load {load_s:.1f} s"
    )
    sizes = [1, *(int(s) for s in args.batch_sizes.split(","))]
    rows: dict[int, tuple[float, list[GenerationResult]]] = {}
    walls: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(args.repeats):
        for size in sizes:
            wall, results = run(provider, requests, size)
            walls[size].append(wall)
            if size not in rows or wall < rows[size][0]:
                rows[size] = (wall, results)
    base_s, base_results = rows[1]
    print(f"\n{'mode':24} {'wall s':>8} {'tokens':>7} {'tokens/s':>9} {'speed-up':>9}  same text  all runs (s)")
    for size, (wall, results) in rows.items():
        tokens = sum(r.completion_tokens for r in results)
        same = sum(a.text == b.text for a, b in zip(results, base_results, strict=True))
        mode = "one at a time" if size == 1 else f"batched, batch_size {size}"
        runs = " ".join(f"{w:.1f}" for w in walls[size])
        print(
            f"{mode:24} {wall:8.2f} {tokens:7d} {tokens / wall:9.1f} {base_s / wall:8.2f}x  "
            f"{same:>4}/{len(results):<4}  {runs}"
        )
    best = max(base_s / wall for size, (wall, _) in rows.items() if size > 1)
    print(f"\nbest speed-up {best:.2f}x (goal >= 3x): {'ok' if best >= 3 else 'BELOW GOAL'}")


if __name__ == "__main__":
    main()
