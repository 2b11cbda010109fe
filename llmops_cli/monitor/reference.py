"""The reference side of drift: the texts of ``monitor.reference`` and their (cached) embeddings.

A row's input is what a user asks (:func:`llmops_cli.data.formats.prompt_of`: the user turns of a
chat row, a qa row's question, an instruction and its input); its output is the reference answer
where the format has one (qa ``answer``, instruction ``output``, the last assistant turn of a
chat row), which production outputs are compared with.

The reference embeddings are the same on every run until the dataset or the embedding model
changes, so they are cached under ``.llmops/cache/monitor/`` keyed by the embedder's fingerprint
and the texts: a cron job or ``--watch`` embeds only production samples. The embedding noise
floor (20 cross-validated classifiers on splits of the reference) is cached next to them, keyed
also by the held-out size and the seed.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.paths import STATE_DIR, atomic_write_bytes

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.monitor.drift import NoiseFloor

CACHE_DIR = Path(STATE_DIR) / "cache" / "monitor"
DEFAULT_EMBEDDING = "all-minilm-l6-v2"


@dataclass
class Reference:
    name: str
    format: str
    inputs: list[str]
    outputs: list[str]  # empty when the dataset's format has no answers


def answer_of(fmt: str, data: dict[str, Any]) -> str | None:
    if fmt == "qa":
        return str(data.get("answer") or "") or None
    if fmt == "instruction":
        return str(data.get("output") or "") or None
    if fmt == "chat":
        replies = [m["content"] for m in data.get("messages") or [] if m.get("role") == "assistant"]
        return replies[-1] if replies and replies[-1] else None
    return None


def load_reference(config: ProjectConfig, name: str) -> Reference:
    """The reference dataset's input and answer texts (empty ones left out)."""
    from llmops_cli.data import dataset_spec, load_rows
    from llmops_cli.data.formats import prompt_of
    from llmops_cli.errors import UsageError

    spec = dataset_spec(config, name)
    if spec.format == "documents":
        raise UsageError(
            f"monitor.reference: dataset '{name}' is a documents folder, not examples of requests",
            hint="Name a chat, qa, instruction or text dataset: one whose rows look like what users send.",
        )
    rows = load_rows(config, name, training=False)
    inputs = [text for row in rows if (text := prompt_of(spec.format, row.data).strip())]
    outputs = [text for row in rows if (text := (answer_of(spec.format, row.data) or "").strip())]
    return Reference(name, spec.format, inputs, outputs)


def cache_key(fingerprint: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(fingerprint.encode())
    for text in texts:
        digest.update(b"\0")
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def embed_reference(root: Path, embedder: Any, texts: Sequence[str]) -> Any:
    """``embedder.embed(texts)``, read from / written to the project's monitor cache."""
    import numpy as np

    path = Path(root) / CACHE_DIR / f"ref-{cache_key(str(getattr(embedder, 'fingerprint', '')), texts)}.npy"
    if path.exists():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(texts):
                return cached
        except (OSError, ValueError):
            pass  # a broken cache file is recomputed and replaced
    vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
    _ensure_state_dir(Path(root))
    buf = io.BytesIO()
    np.save(buf, vectors, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return vectors


NOISE_FLOOR_VERSION = 1  # bump when the floor's method changes, so old cache files are ignored


def cached_noise_floor(
    root: Path, embedder: Any, texts: Sequence[str], n_current: int, seed: int, compute: Callable[[], NoiseFloor | None]
) -> NoiseFloor | None:
    """``compute()`` (the embedding noise floor of ``texts``), read from / written to the monitor cache."""
    from llmops_cli.monitor.drift import NULL_REPEATS, NoiseFloor, holdout_size

    held_out = holdout_size(len(texts), n_current)
    params = f"v{NOISE_FLOOR_VERSION}-h{held_out}-r{NULL_REPEATS['embedding']}-s{seed}"
    key = cache_key(str(getattr(embedder, "fingerprint", "")), texts)
    path = Path(root) / CACHE_DIR / f"floor-{key}-{params}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            return None if data is None else NoiseFloor.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # recomputed and replaced
    floor = compute()
    _ensure_state_dir(Path(root))
    atomic_write_bytes(path, json.dumps(None if floor is None else floor.to_dict()).encode())
    return floor


def _ensure_state_dir(root: Path) -> None:
    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# llmops state: content store, caches, indexes\n*\n")


EmbedderFactory = Callable[[], Any]


def default_embedder(config: ProjectConfig) -> EmbedderFactory:
    """The embedded MiniLM, loaded on first use (nothing heavy until embedding drift runs)."""

    def make() -> Any:
        from llmops_cli.retrieval import get_embedder

        return get_embedder(config, DEFAULT_EMBEDDING)

    return make
