"""Do our eval metrics give the reference implementations' numbers, and how fast do we score?

On the sample project's eval answers (references) and perturbed copies of them (predictions):
our rouge1/rouge2/rougeL means against rouge-score called directly, and our corpus BLEU / chrF
against the `sacrebleu` command line run on hyp/ref files. Prints both values, the absolute
difference (goal: equal to 4 decimals) and the time each path took.

    python benchmarks/eval_metrics_agreement.py [--data sample-project/data/eval.jsonl] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmops_cli.evals import CaseInput, MetricSpec, aggregate_scores, build_metrics, score_cases  # noqa: E402


def perturb(text: str, rng: random.Random) -> str:
    """Drop, duplicate, swap and case-change some words, so scores spread over the range."""
    words = text.split()
    out: list[str] = []
    for word in words:
        roll = rng.random()
        if roll < 0.12:
            continue
        out.append(word.upper() if roll > 0.95 else word)
        if 0.12 <= roll < 0.2:
            out.append(word)
    if len(out) > 3 and rng.random() < 0.5:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out) or text


def sacrebleu_cli(hyps: list[str], refs: list[str]) -> tuple[dict[str, float], float]:
    exe = shutil.which("sacrebleu") or str(Path(sys.executable).with_name("sacrebleu"))
    with tempfile.TemporaryDirectory() as tmp:
        hyp, ref = Path(tmp, "hyp.txt"), Path(tmp, "ref.txt")
        hyp.write_text("\n".join(hyps) + "\n", encoding="utf-8")
        ref.write_text("\n".join(refs) + "\n", encoding="utf-8")
        start = time.perf_counter()
        proc = subprocess.run(
            [exe, str(ref), "-i", str(hyp), "-m", "bleu", "chrf", "-w", "6", "-f", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - start
    scores = json.loads(proc.stdout)
    return {item["name"].lower().replace("chrf2", "chrf"): float(item["score"]) for item in scores}, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "sample-project" / "data" / "eval.jsonl")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(args.seed)
    refs = [" ".join(row["answer"].split()) for row in rows]  # one line each for the CLI files
    hyps = [perturb(ref, rng) for ref in refs]

    items = [CaseInput(h, [r]) for h, r in zip(hyps, refs, strict=True)]
    timings = []
    for _ in range(3):  # the first run imports rouge-score (nltk) and sacrebleu
        start = time.perf_counter()
        metrics = build_metrics([MetricSpec.parse(m) for m in ("rouge1", "rouge2", "rougeL", "bleu", "chrf")])
        ours = aggregate_scores(metrics, score_cases(metrics, items), items)
        timings.append(time.perf_counter() - start)

    from rouge_score import rouge_scorer

    start = time.perf_counter()  # rouge-score already imported by our first run
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    direct = [scorer.score(r, h) for h, r in zip(hyps, refs, strict=True)]
    reference = {k: statistics.fmean(d[k].fmeasure for d in direct) for k in ("rouge1", "rouge2", "rougeL")}
    rouge_s = time.perf_counter() - start
    cli, cli_s = sacrebleu_cli(hyps, refs)
    reference.update(cli)

    print(f"{len(items)} pairs from {args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data}")
    print(f"{'metric':18} {'llmops':>10} {'reference':>10} {'abs diff':>10}  reference path")
    worst, equal = 0.0, True
    for key, stat, source in [
        ("rouge1", "mean", "rouge-score"),
        ("rouge2", "mean", "rouge-score"),
        ("rougeL", "mean", "rouge-score"),
        ("bleu", "corpus", "sacrebleu CLI"),
        ("chrf", "corpus", "sacrebleu CLI"),
    ]:
        mine, theirs = ours[key][stat], reference[key]
        worst = max(worst, abs(mine - theirs))
        equal = equal and round(mine, 4) == round(theirs, 4)
        print(f"{key + '.' + stat:18} {mine:10.4f} {theirs:10.4f} {abs(mine - theirs):10.2e}  {source}")
    print(f"\nbleu signature: {ours['bleu']['signature']}\nchrf signature: {ours['chrf']['signature']}")
    print(
        f"\nour scoring time, 5 metrics x {len(items)} cases: first run {timings[0] * 1000:.1f} ms (imports "
        f"rouge-score/nltk, sacrebleu), warm {min(timings[1:]) * 1000:.1f} ms"
        f"\nreference paths: rouge-score direct (3 rouge types) {rouge_s * 1000:.1f} ms; sacrebleu CLI "
        f"(bleu+chrf, process start incl.) {cli_s * 1000:.1f} ms"
    )
    verdict = "ok" if equal else "MISMATCH"
    print(f"largest abs difference {worst:.2e}: equal to 4 decimals: {verdict}")
    if verdict != "ok":
        sys.exit(1)


if __name__ == "__main__":
    main()
