"""Datasets: load and validate rows, explore them (EDA), and version clean train/eval snapshots.

Importing this package is cheap; transformers loads only when token lengths are counted.

    rows = load_rows(config, "support-train")           # raises ConfigError listing every bad row
    example = to_example(rows[0], "chat")               # {"messages": [...]} or {"text": ...}
    stats = dataset_stats(config, "support-train")      # llmops data stats
    snap = snapshot_dataset(config, "support-train")    # llmops data snapshot -> dataset/NAME/vN
"""

from typing import TYPE_CHECKING

from llmops_cli.lazy import exports

if TYPE_CHECKING:
    from llmops_cli.data.formats import FORMATS, ROLES, normalize_record, to_example
    from llmops_cli.data.keys import normalize_text
    from llmops_cli.data.loading import DatasetCheck, Row, check_dataset, dataset_spec, load_rows
    from llmops_cli.data.snapshot import Snapshot, snapshot_dataset
    from llmops_cli.data.stats import DatasetStats, Distribution, Duplicates, Overlap, Pair, dataset_stats
    from llmops_cli.data.tokens import ProgressFn, load_tokenizer, token_lengths

__all__ = [
    "FORMATS",
    "ROLES",
    "DatasetCheck",
    "DatasetStats",
    "Distribution",
    "Duplicates",
    "Overlap",
    "Pair",
    "ProgressFn",
    "Row",
    "Snapshot",
    "check_dataset",
    "dataset_spec",
    "dataset_stats",
    "load_rows",
    "load_tokenizer",
    "normalize_record",
    "normalize_text",
    "snapshot_dataset",
    "to_example",
    "token_lengths",
]

# Each submodule loads when one of its names is first used (llmops_cli.lazy).
__getattr__, __dir__ = exports(
    __name__,
    {
        "llmops_cli.data.formats": ("FORMATS", "ROLES", "normalize_record", "to_example"),
        "llmops_cli.data.keys": ("normalize_text",),
        "llmops_cli.data.loading": ("DatasetCheck", "Row", "check_dataset", "dataset_spec", "load_rows"),
        "llmops_cli.data.snapshot": ("Snapshot", "snapshot_dataset"),
        "llmops_cli.data.stats": ("DatasetStats", "Distribution", "Duplicates", "Overlap", "Pair", "dataset_stats"),
        "llmops_cli.data.tokens": ("ProgressFn", "load_tokenizer", "token_lengths"),
    },
)
