"""What a model name in llmops.yaml stands for: one answer for every command.

A name is a ``models:`` entry or a ``quantized:`` variant of one. :func:`identity` says which, the
``models:`` entry underneath (a quantized name maps to its model), where a variant's build is (its
artifact folder, or the build ``llmops quantize`` is checking, see :func:`staged`), the adapter
stacked on it, and :meth:`ModelIdentity.fingerprint`, the identity of the weights used in lineage,
caches and provenance. Nothing here loads a model; resolving is cheap and hashing is cached.
"""

from __future__ import annotations

import difflib
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_cli.errors import UsageError
from llmops_cli.filenames import MODEL_CONFIG

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec, ProjectConfig
    from llmops_cli.config.quantized import QuantizedSpec
    from llmops_cli.models.resolver import ResolvedModel

_STAGED: dict[tuple[str, str], Path] = {}
_STAGED_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelIdentity:
    """A model name resolved against the project (see :func:`identity`)."""

    name: str  # as asked: a models: or a quantized: name
    model: str  # the models: entry underneath (the name itself, or the variant's model)
    spec: ModelSpec  # that entry
    root: Path  # the project root, which relative sources are read from
    quantized: QuantizedSpec | None = None  # the quantized: variant, when the name is one
    folder: Path | None = None  # the variant's build folder (may not be built yet)
    adapter: str | None = None  # the adapters: entry stacked on the weights, if any

    @functools.cached_property
    def resolved(self) -> ResolvedModel:
        """Where the ``models:`` entry's weights come from (no download, no load)."""
        from llmops_cli.models.resolver import resolve

        return resolve(self.spec, self.root)

    @property
    def built(self) -> bool:
        """False only for a quantized variant whose build is not there yet."""
        return self.quantized is None or (self.folder is not None and is_built(self.folder))

    def fingerprint(self) -> str:
        """The identity of the weights: the base's source digest, or a built variant's own digest.

        Raises the resolver's error (with the fix) when the base's weights are not available, and a
        UsageError saying how to build a variant that is not built.
        """
        from llmops_cli.models.fingerprint import fingerprint, folder_fingerprint

        if self.quantized is None:
            return fingerprint(self.resolved)
        assert self.folder is not None
        if (self.folder / MODEL_CONFIG).is_file():
            return folder_fingerprint(self.folder)
        from llmops_cli.engines.gguf import GGUF_NAME
        from llmops_cli.models.hashing import file_sha256

        if (self.folder / GGUF_NAME).is_file():
            return "sha256:" + file_sha256(self.folder / GGUF_NAME)
        raise UsageError(
            f"The quantized model '{self.name}' has not been built yet (no {self.folder}).",
            hint=f"Build it with 'llmops quantize {self.name}'.",
        )


def identity(config: ProjectConfig, name: str) -> ModelIdentity:
    """What ``name`` (a ``models:`` or ``quantized:`` name) stands for; UsageError for an unknown name."""
    if name in config.models:
        return ModelIdentity(name, name, config.models[name], config.root)
    if name in config.quantized:
        variant = config.quantized[name]
        if variant.model not in config.models:
            raise unknown_model_error(config, variant.model)
        return ModelIdentity(
            name,
            variant.model,
            config.models[variant.model],
            config.root,
            quantized=variant,
            folder=quantized_folder(config, name),
            adapter=variant.adapter,
        )
    raise unknown_model_error(config, name)


def unknown_model_error(config: ProjectConfig, name: str) -> UsageError:
    known = list(config.models)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"Did you mean '{close[0]}'?" if close else f"Declared models: {', '.join(known) or 'none'}."
    return UsageError(f"No model named '{name}' in {config.path.name} (models:).", hint=hint)


@contextmanager
def staged(config: ProjectConfig, name: str, folder: Path) -> Iterator[None]:
    """Within the block, the quantized model ``name`` of this project is the build in ``folder``."""
    key = (str(config.root.resolve()), name)
    with _STAGED_LOCK:
        _STAGED[key] = folder
    try:
        yield
    finally:
        with _STAGED_LOCK:
            _STAGED.pop(key, None)


def quantized_folder(config: ProjectConfig, name: str) -> Path:
    """Where the quantized model ``name`` is read from: its artifact folder (or the build being checked)."""
    with _STAGED_LOCK:
        folder = _STAGED.get((str(config.root.resolve()), name))
    if folder is not None:
        return folder
    from llmops_cli.versioning import ArtifactRegistry

    return ArtifactRegistry.for_config(config).folder("quantized", name)


def is_built(folder: Path) -> bool:
    """Whether ``folder`` holds a quantized build (bitsandbytes HF folder or GGUF)."""
    from llmops_cli.engines.gguf import GGUF_NAME

    return (folder / MODEL_CONFIG).is_file() or (folder / GGUF_NAME).is_file()
