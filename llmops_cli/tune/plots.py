"""The training curve: train loss and eval loss against the optimizer step, as a PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops_cli.errors import require


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_training_curve(metrics_path: Path, png_path: Path, *, title: str = "") -> Path:
    """Draw ``metrics.jsonl`` into ``png_path`` (matplotlib's Agg backend: no display needed)."""
    require("matplotlib", extra="tune", purpose="Drawing the training curve")
    import matplotlib

    matplotlib.use("Agg", force=True)  # a headless backend, whatever the user's matplotlibrc says
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if train:
            ax.plot(*zip(*train, strict=True), label="train loss", color="tab:blue", linewidth=1.5)
        if evals:
            ax.plot(*zip(*evals, strict=True), label="eval loss", color="tab:orange", marker="o", linewidth=1.5)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (cross-entropy per target token)")
        ax.set_title(title or "training curve")
        ax.grid(True, alpha=0.3)
        if train or evals:
            ax.legend()
        png_path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(png_path, format="png")
    finally:
        plt.close(fig)
    return png_path
