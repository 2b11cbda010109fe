"""A stable ``sha256:`` identity per model, recorded in lineage ("which base model made adapter v3").

The identity follows the weights, not the name: a GGUF is its file hash (the dequantized cache is
derived from it), an HF folder hashes its config and weight files, a hub model is its snapshot
commit, and a remote model is only what we know of it (URL and model id).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from llmops_cli.errors import UnavailableError
from llmops_cli.filenames import MODEL_CONFIG
from llmops_cli.models.embedded import require_embedded
from llmops_cli.models.hashing import file_sha256, text_sha256
from llmops_cli.models.resolver import ResolvedModel

# Files that are not the model even when they look like weights (Trainer's pickled arguments).
_NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "scheduler.bin"}


def fingerprint(resolved: ResolvedModel) -> str:
    """``sha256:<hex>`` identifying the weights behind ``resolved``; raises if they are not here."""
    if resolved.kind == "remote":
        return text_sha256("remote", resolved.base_url or "", resolved.model or "")
    if not resolved.available:
        if resolved.embedded is not None:
            require_embedded(resolved.embedded)  # raises with the exact pip command
        raise UnavailableError(f"Cannot fingerprint model '{resolved.name}': {resolved.detail}")
    if resolved.kind == "hub":
        return text_sha256("hub", resolved.source or "", resolved.commit or "")
    if resolved.gguf_file is not None:
        return "sha256:" + file_sha256(resolved.gguf_file)
    if resolved.path is None:
        raise UnavailableError(f"Model '{resolved.name}' has no local files to fingerprint.")
    return folder_fingerprint(resolved.path)


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint files of an HF folder (sharded or not), in a stable order."""
    found = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
    return sorted((p for p in found if p.is_file() and p.name not in _NOT_WEIGHTS), key=lambda p: p.name)


def folder_fingerprint(folder: Path) -> str:
    """sha256 over config.json's bytes and each weight file's (name, size, sha256)."""
    digest = hashlib.sha256()
    digest.update(b"config.json\0" + (folder / MODEL_CONFIG).read_bytes() + b"\0")
    for path in weight_files(folder):
        entry = f"{path.name}\t{path.stat().st_size}\t{file_sha256(path)}\n"
        digest.update(entry.encode("utf-8"))
    return "sha256:" + digest.hexdigest()
