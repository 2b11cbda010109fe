"""Turn a resolved model into a local Hugging Face folder, and load it.

GGUF sources (the embedded SmolLM2, or a user's ``.gguf``) are dequantized by transformers once and
cached as safetensors under ``$LLMOPS_HOME/models/<name>-<sha16>/``, so every later load is a plain
``from_pretrained(folder)``: no GGUF parsing, and the same code path as any HF model (training,
quantization and packaging all want a normal folder). torch and transformers are imported inside
functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UnavailableError, UsageError, require
from llmops_cli.filenames import MODEL_CONFIG
from llmops_cli.models.embedded import require_embedded
from llmops_cli.models.hashing import file_sha256
from llmops_cli.models.resolver import (
    MARKER_NAME,
    ResolvedModel,
    is_materialized,
    materialized_dir,
    resolve,
    safe_name,
)
from llmops_cli.paths import atomic_write_text, file_lock

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec

DTYPES = ("auto", "float32", "float16", "bfloat16")
_STALE_AFTER_S = 24 * 3600  # a build dir this old belongs to a run that crashed, not a slow one


def materialize(spec: ModelSpec, project_root: Path) -> Path:
    """A local HF folder for ``spec`` that plain ``AutoModel*.from_pretrained(folder)`` can load."""
    return materialize_resolved(resolve(spec, project_root))


def materialize_resolved(resolved: ResolvedModel) -> Path:
    if resolved.kind == "remote":
        raise UsageError(
            f"Model '{resolved.name}' is remote ({resolved.base_url}); it has no local weights to load.",
            hint="Use a model with 'source:' for commands that load weights (tune, quantize, package).",
        )
    if not resolved.available:
        if resolved.embedded is not None:
            require_embedded(resolved.embedded)  # raises with the exact pip command
        raise UnavailableError(
            f"Model '{resolved.name}' ({resolved.source}) is not available here.", hint=resolved.detail
        )
    if resolved.gguf_file is not None:
        key = resolved.embedded.name if resolved.embedded else safe_name(resolved.gguf_file.stem)
        return materialize_gguf(resolved.gguf_file, key)
    assert resolved.path is not None  # available local kinds always carry a folder
    return resolved.path


def materialize_gguf(gguf: Path, key: str) -> Path:
    """The dequantized cache folder of ``gguf``, built on first use; safe against parallel runs."""
    digest = file_sha256(gguf)
    folder = materialized_dir(key, digest)
    if is_materialized(folder):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UnavailableError(
            f"Cannot create the model cache {folder.parent}: {error.strerror}.",
            hint="Set LLMOPS_HOME to a writable directory.",
        ) from error
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if is_materialized(folder):  # another run finished it while we waited for the lock
            return folder
        marker = {"source": str(gguf), "sha256": digest, "created": time.time()}
        build_atomically(folder, lambda tmp: dequantize_gguf(gguf, tmp), marker)
    return folder


def build_atomically(final: Path, build: Callable[[Path], None], marker: dict[str, Any]) -> None:
    """Run ``build`` into a temp dir beside ``final``, then rename it into place.

    The marker file is written last and only a folder holding it counts as valid, so a crash, a
    Ctrl-C or a concurrent run can never leave a half folder that is later loaded.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a shared LLMOPS_HOME must stay readable
    try:
        build(tmp)
        _fsync_tree(tmp)  # the rename must not reach the disk before the data does
        atomic_write_text(tmp / MARKER_NAME, json.dumps({**marker, "complete": True}, indent=1))
        if final.exists() and not is_materialized(final):
            _remove_aside(final)  # a foreign or damaged folder: never trust it
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_materialized(final):  # not a lost race with another finished run
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dequantize_gguf(gguf: Path, dest: Path) -> None:
    """Load ``gguf`` with transformers, dequantized, and save it with its tokenizer into ``dest``."""
    for module in ("torch", "transformers", "gguf", "accelerate"):
        require(module, extra="models", purpose="Loading a GGUF model")
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options: dict[str, Any] = {"gguf_file": str(gguf), "local_files_only": True}
    try:
        from transformers import GgufConfig

        # Without this, transformers keeps GGUF blocks packed when a `kernels` matmul kernel is
        # installed; packed weights cannot be saved as safetensors, so ask for dense ones.
        quant: dict[str, Any] = {"quantization_config": GgufConfig(dequantize=True)}
    except ImportError:  # older transformers always dequantize GGUF at load time
        quant = {}
    # The caller shows its own progress; transformers' tqdm bars would interleave with it.
    bars_were_enabled = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        # transformers' GGUF reader writes a plain tqdm bar to stderr whatever the settings say.
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **options)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **options, **quant)
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
    except (ValueError, KeyError, NotImplementedError, OSError) as error:
        raise UnavailableError(
            f"transformers {transformers.__version__} cannot load {gguf}: {error}",
            hint="Convert it to a Hugging Face folder elsewhere and point 'source:' at that folder.",
        ) from error
    finally:
        if bars_were_enabled:
            transformers.utils.logging.enable_progress_bar()


def load_model(
    spec: ModelSpec, project_root: Path, *, dtype: str | None = None, device: str = "cpu"
) -> tuple[Any, Any]:
    """(model, tokenizer) for ``spec``, loaded from local files only, in eval mode on ``device``.

    ``dtype`` overrides the entry's own; "auto" is bfloat16 on a CPU with bfloat16 instructions
    (AVX512-BF16 or AMX), else float32 on CPU, and bfloat16 (else float16) on a GPU. Generation only:
    tuning and merging load "auto" in float32 on a CPU.
    """
    from llmops_cli.models.trust import remote_code_allowed

    trust = remote_code_allowed(spec.name, spec.trust_remote_code)  # before any file is touched
    folder = materialize(spec, project_root)
    for module in ("torch", "transformers"):
        require(module, extra="models", purpose=f"Loading model '{spec.name}'")
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    torch_device = _check_device(device)
    auto = AutoModelForCausalLM if is_causal_lm(folder) else AutoModel
    weights_dtype = torch_dtype(dtype or spec.dtype, device, inference=True)
    model = auto.from_pretrained(str(folder), dtype=weights_dtype, local_files_only=True, trust_remote_code=trust)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust)
    _apply_overrides(tokenizer, spec)
    model.to(torch_device)
    model.eval()
    return model, tokenizer


def torch_dtype(name: str, device: str = "cpu", *, inference: bool = False) -> Any:
    """The torch dtype for an llmops.yaml ``dtype`` value on ``device``.

    "auto" on a CPU is float32, except for generation (``inference``) on a CPU with bfloat16
    instructions; training and merging keep float32 there.
    """
    import torch

    if name not in DTYPES:
        raise UsageError(f"Unknown dtype '{name}'.", hint=f"Use one of: {', '.join(DTYPES)}.")
    if name != "auto":
        return getattr(torch, name)
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # Measured on SmolLM2-135M (2 cores with AVX512-BF16): 83 -> 70 ms/token for one request and
    # 42 -> 71 tokens/s for a batch of 8. Without those instructions bfloat16 is emulated: float32.
    from llmops_cli.engines.cpus import cpu_has_bf16

    return torch.bfloat16 if inference and cpu_has_bf16() else torch.float32


def is_causal_lm(folder: Path) -> bool:
    """Whether config.json declares a text-generation head (else load the bare encoder, e.g. MiniLM)."""
    try:
        architectures = json.loads((folder / MODEL_CONFIG).read_text(encoding="utf-8")).get("architectures")
    except (OSError, ValueError):
        return True
    if not architectures:
        return True
    return any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in architectures)


def _check_device(device: str) -> Any:
    import torch

    try:
        torch_device = torch.device(device)
    except RuntimeError as error:
        hint = "Use cpu, cuda, cuda:N or mps."
        raise UsageError(f"Unknown device '{device}': {error}", hint=hint) from error
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        message = f"Device '{device}' was asked for, but torch sees no CUDA GPU."
        raise UnavailableError(message, hint="Use --device cpu.")
    return torch_device


def _apply_overrides(tokenizer: Any, spec: ModelSpec) -> None:
    """llmops.yaml's chat_template and max_context win over what the checkpoint ships."""
    if spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    if spec.max_context:
        tokenizer.model_max_length = spec.max_context


def _remove_aside(path: Path) -> None:
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _sweep_stale(parent: Path) -> None:
    """Delete build leftovers of crashed runs (they hold hundreds of MB)."""
    cutoff = time.time() - _STALE_AFTER_S
    for entry in parent.iterdir():
        if entry.name.startswith((".tmp-", ".trash-")) and entry.is_dir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
