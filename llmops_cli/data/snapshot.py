"""Dataset snapshots: clean, deduplicate, split deterministically and version as ``dataset/NAME/vN``.

The split puts a row in eval iff ``sha256(seed, normalized row) mod 10000 < eval_split * 10000``,
so a row's side depends on nothing but its own content: adding rows never moves existing ones
between train and eval (no leakage across versions). A snapshot whose content hash and params
equal the latest version's is reused instead of registered again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.data.formats import empty_fields, to_example
from llmops_cli.data.keys import canonical_json, exact_key, near_key, split_bucket
from llmops_cli.data.loading import Row, dataset_spec, load_rows
from llmops_cli.data.readers import dataset_files
from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.versioning import ArtifactRegistry, ArtifactVersion

TRAIN_FILE, EVAL_FILE, STATS_FILE = "train.jsonl", "eval.jsonl", "stats.json"
SNAPSHOT_FORMAT = 1  # bump when cleaning, dedupe or split rules change: old versions are then not reused
_LISTED = 100  # line references kept per list in stats.json
DEDUPE = {"exact": True, "near": True, "normalize": ["lowercase", "strip_punctuation", "collapse_whitespace"]}


@dataclass
class Snapshot:
    ref: str  # "dataset/NAME@vN"
    version: int
    content_hash: str  # "sha256:..." over the cleaned, deduplicated rows (canonical JSON, in order)
    train: list[dict[str, Any]]  # examples (to_example output), in source order
    eval: list[dict[str, Any]]
    path: Path  # artifacts/dataset/NAME/
    created: bool  # False when an existing identical version was reused
    stats: dict[str, Any] = field(default_factory=dict)  # the content of stats.json


@dataclass
class Cleaned:
    rows: list[Row] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # "file:line" of rows dropped for an empty field
    exact: list[list[str]] = field(default_factory=list)  # [removed, kept] "file:line" pairs
    near: list[list[str]] = field(default_factory=list)


def clean_rows(fmt: str, rows: list[Row]) -> Cleaned:
    """Drop rows with an empty required field, then exact and near duplicates (the first one is kept)."""
    cleaned = Cleaned()
    seen_exact: dict[str, Row] = {}
    seen_near: dict[str, Row] = {}
    for row in rows:  # strings were stripped when the rows were loaded
        if empty_fields(fmt, row.data):
            cleaned.empty.append(row.where)
            continue
        ek, nk = exact_key(fmt, row.data), near_key(fmt, row.data)
        if ek in seen_exact:
            cleaned.exact.append([row.where, seen_exact[ek].where])
        elif nk in seen_near:
            cleaned.near.append([row.where, seen_near[nk].where])
        else:
            seen_exact[ek], seen_near[nk] = row, row
            cleaned.rows.append(row)
    return cleaned


def content_hash(rows: list[Row]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update((canonical_json(row.data) + "\n").encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def split_rows(fmt: str, rows: list[Row], *, eval_split: float, seed: int) -> tuple[list[Row], list[Row]]:
    threshold = round(eval_split * 10_000)
    train: list[Row] = []
    held_out: list[Row] = []
    for row in rows:
        (held_out if split_bucket(seed, near_key(fmt, row.data)) < threshold else train).append(row)
    return train, held_out


def snapshot_dataset(
    config: ProjectConfig, name: str, *, eval_split: float | None = None, seed: int | None = None
) -> Snapshot:
    """Clean, deduplicate and split dataset ``name``; register it as ``dataset/NAME/vN`` (or reuse).

    ``eval_split`` and ``seed`` default to those of the adapter that trains on the dataset (so a
    snapshot taken by hand is the one ``llmops tune`` reuses), else 0.1 and 42.
    """
    from llmops_cli.data.tokens import training_adapter
    from llmops_cli.versioning import ArtifactRegistry

    adapter = training_adapter(config, name)
    training = config.adapters[adapter].training if adapter else None
    if eval_split is None:
        eval_split = float(training.eval_split) if training else 0.1
    if seed is None:
        seed = int(training.seed) if training else 42
    if not 0 <= eval_split <= 0.5:
        raise UsageError(f"eval_split must be between 0 and 0.5, not {eval_split}")
    spec = dataset_spec(config, name)
    fmt = spec.format
    rows = load_rows(config, name)
    cleaned = clean_rows(fmt, rows)
    if not cleaned.rows:
        raise UsageError(
            f"dataset '{name}' has no rows left after cleaning ({len(rows)} read, {len(cleaned.empty)} empty)",
            hint=f"Run 'llmops data stats {name}' to see what is in it.",
        )
    digest = content_hash(cleaned.rows)
    train, held_out = split_rows(fmt, cleaned.rows, eval_split=eval_split, seed=seed)
    params = snapshot_params(spec.fields, fmt, eval_split=eval_split, seed=seed)
    stats = _stats(name, spec.path, fmt, digest, params, len(rows), cleaned, len(train), len(held_out))
    registry = ArtifactRegistry.for_config(config)
    latest = _reusable(registry, name, digest, params)
    if latest is not None:
        return _read_back(registry, latest, digest, stats)
    train_examples = [to_example(r, fmt) for r in train]
    eval_examples = [to_example(r, fmt) for r in held_out]
    version = _register(registry, config, name, stats, train_examples, eval_examples)
    path = registry.folder("dataset", name)
    return Snapshot(
        f"dataset/{name}@v{version.version}", version.version, digest, train_examples, eval_examples, path, True, stats
    )


def snapshot_params(fields: Mapping[str, str], fmt: str, *, eval_split: float, seed: int) -> dict[str, Any]:
    """What a snapshot is made with besides the rows; a change in any of them makes a new version."""
    return {
        "eval_split": eval_split,
        "seed": seed,
        "dedupe": DEDUPE,
        "format": fmt,
        "fields": dict(fields),
        "snapshot_format": SNAPSHOT_FORMAT,
    }


def _stats(
    name: str,
    path: str,
    fmt: str,
    digest: str,
    params: dict[str, Any],
    rows_in: int,
    cleaned: Cleaned,
    train: int,
    held_out: int,
) -> dict[str, Any]:
    """stats.json: deterministic (no dates), so an identical snapshot gives identical bytes."""
    return {
        "dataset": name,
        "path": path,
        "format": fmt,
        "content_hash": digest,
        "params": params,
        "rows_in": rows_in,
        "rows_out": len(cleaned.rows),
        "train": train,
        "eval": held_out,
        "dropped_empty": {"count": len(cleaned.empty), "rows": cleaned.empty[:_LISTED]},
        "exact_duplicates_removed": {"count": len(cleaned.exact), "pairs": cleaned.exact[:_LISTED]},
        "near_duplicates_removed": {"count": len(cleaned.near), "pairs": cleaned.near[:_LISTED]},
    }


# --- registry -------------------------------------------------------------------------------------


def _reusable(registry: ArtifactRegistry, name: str, digest: str, params: dict[str, Any]) -> ArtifactVersion | None:
    """The latest version if it has this content hash and these params, else None."""
    from llmops_cli.versioning import ArtifactRef

    versions = registry.versions(ArtifactRef("dataset", name))
    if not versions:
        return None
    latest = versions[-1]
    latest.manifest = registry.read_manifest(latest)
    if latest.manifest.get("params") != json.loads(json.dumps(params)):
        return None
    folder = registry.git.relpath(registry.folder("dataset", name))
    text = registry.git.show_file(latest.commit, f"{folder}/{STATS_FILE}")
    try:
        recorded = json.loads(text or "{}").get("content_hash")
    except ValueError:
        return None
    return latest if recorded == digest else None


def _read_back(registry: ArtifactRegistry, latest: ArtifactVersion, digest: str, stats: dict[str, Any]) -> Snapshot:
    """The reused version's examples, from the work tree (checked out first if missing or changed)."""
    from llmops_cli.versioning import ArtifactRef, sha256_file

    folder = registry.folder("dataset", latest.name)
    expected = {f["path"]: f["sha256"] for f in latest.manifest.get("files", [])}
    intact = all(
        (folder / rel).is_file() and sha256_file(folder / rel) == sha
        for rel, sha in expected.items()
        if rel in (TRAIN_FILE, EVAL_FILE)
    )
    if not intact:
        registry.checkout(ArtifactRef("dataset", latest.name, latest.version))
    ref = f"dataset/{latest.name}@v{latest.version}"
    train, held_out = _read_jsonl(folder / TRAIN_FILE), _read_jsonl(folder / EVAL_FILE)
    return Snapshot(ref, latest.version, digest, train, held_out, folder, False, stats)


def _register(
    registry: ArtifactRegistry,
    config: ProjectConfig,
    name: str,
    stats: dict[str, Any],
    train: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
) -> ArtifactVersion:
    from llmops_cli.versioning import Input, sha256_file

    spec = config.datasets[name]
    sources = dataset_files(config.resolve_path(spec.path), spec.file_format, root=config.root)
    inputs = [Input(_relative(f, config.root), "sha256:" + sha256_file(f)) for f in sources]
    registry.ensure_state_dir()
    tmp = Path(tempfile.mkdtemp(prefix="dataset-", dir=registry.state))
    try:
        _write_jsonl(tmp / TRAIN_FILE, train)
        _write_jsonl(tmp / EVAL_FILE, held_out)
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        removed = stats["exact_duplicates_removed"]["count"] + stats["near_duplicates_removed"]["count"]
        return registry.register(
            "dataset",
            name,
            {TRAIN_FILE: tmp / TRAIN_FILE, EVAL_FILE: tmp / EVAL_FILE, STATS_FILE: tmp / STATS_FILE},
            inputs=inputs,
            config_hash=config.section_hash("datasets", name),
            metrics={
                "rows_in": stats["rows_in"],
                "rows_out": stats["rows_out"],
                "train": stats["train"],
                "eval": stats["eval"],
                "dropped_empty": stats["dropped_empty"]["count"],
                "exact_duplicates_removed": stats["exact_duplicates_removed"]["count"],
                "near_duplicates_removed": stats["near_duplicates_removed"]["count"],
                "duplicates_removed": removed,
            },
            params=stats["params"],
            summary=(
                f"{stats['rows_out']} rows ({stats['train']} train, {stats['eval']} eval) from {spec.path}; "
                f"removed {removed} duplicates and {stats['dropped_empty']['count']} rows with empty fields; "
                f"content {stats['content_hash']}"
            ),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_jsonl(path: Path, examples: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for example in examples:
            handle.write(json.dumps(example, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _relative(file: Path, root: Path) -> str:
    try:
        return file.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return file.as_posix()
