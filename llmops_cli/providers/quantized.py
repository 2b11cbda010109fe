"""Generating with a built quantized model: its model spec, and loading it with bitsandbytes.

``get_provider(config, "<quantized name>")`` asks :func:`quantized_model_spec` for a model spec whose
source is ``artifacts/quantized/NAME/``; :class:`~llmops_cli.providers.local.LocalProvider` sees the
spec (or any model entry whose folder is bitsandbytes-serialized, see :func:`prequantized_folder`)
and loads it with :func:`load_quantized`: bitsandbytes weights cannot be cast to another dtype or
loaded the way plain checkpoints are. While ``llmops quantize`` checks quality, the name points at
the not yet registered build folder instead (:func:`llmops_cli.models.identity.staged`).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UnavailableError, UsageError, require
from llmops_cli.filenames import ADAPTER_CONFIG, MODEL_CONFIG
from llmops_cli.models.identity import identity
from llmops_cli.providers.adapters import check_adapter_folder, with_adapter

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec, ProjectConfig

ADAPTER_DIR = "adapter"  # merge: false ships the LoRA adapter in this subfolder


def quantized_model_spec(config: ProjectConfig, name: str) -> ModelSpec:
    """A local model spec over the built quantized model ``name``; says how to build it when missing."""
    from llmops_cli.config.project import ModelSpec

    if name not in config.quantized:
        raise unknown_quantized_error(config, name)
    variant = identity(config, name)
    folder, base = variant.folder, variant.spec
    assert folder is not None
    if config.quantized[name].method == "gguf":
        gguf = check_built_gguf(folder, name)
        return ModelSpec(
            name=name,
            source=str(gguf),
            dtype="auto",
            quantized=name,
            gguf_build=str(gguf),
            # The base entry's options still apply: the quantized model is that model, smaller.
            chat_template=base.chat_template,
            max_context=base.max_context,
            parallel=base.parallel,
            threads=base.threads,
        )
    check_built(folder, name)
    # The base entry's loading options still apply: the quantized model is that model, smaller.
    return ModelSpec(
        name=name,
        source=str(folder),
        dtype="auto",
        quantized=name,
        trust_remote_code=base.trust_remote_code,
        chat_template=base.chat_template,
        max_context=base.max_context,
    )


def unknown_quantized_error(config: ProjectConfig, name: str) -> UsageError:
    """The error for a ``quantized:`` name the project does not declare, with the closest one."""
    known = sorted(config.quantized)
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        hint = f"Did you mean '{close[0]}'?"
    else:
        hint = (
            f"Declared: {', '.join(known)}."
            if known
            else "Add one under 'quantized:' ('llmops schema' lists its keys)."
        )
    return UsageError(f"llmops.yaml declares no quantized model '{name}' (quantized:).", hint=hint)


def is_quantized_spec(spec: ModelSpec) -> bool:
    """Whether ``spec`` came from :func:`quantized_model_spec` (a ``quantized:`` name)."""
    return bool(spec.quantized)


def prequantized_folder(spec: ModelSpec, project_root: Path) -> Path | None:
    """The folder of a bitsandbytes-serialized model behind ``spec``, or None for any other model.

    A ``quantized:`` name qualifies, and so does a ``models:`` entry whose source is such a folder
    (a package rewrites its quantized model that way; a hub "bnb-4bit" snapshot is one too): both
    must load with their saved dtype and a device map, never be cast like plain checkpoints.
    """
    if is_quantized_spec(spec):
        return Path(spec.source or "")
    if spec.is_remote or not spec.source or spec.source.lower().endswith(".gguf"):
        return None
    from llmops_cli.models import resolve

    resolved = resolve(spec, project_root)
    if resolved.path is None or not resolved.available or resolved.gguf_file is not None:
        return None
    return resolved.path if is_bitsandbytes_folder(resolved.path) else None


def is_bitsandbytes_folder(folder: Path) -> bool:
    try:
        config = json.loads((folder / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    quant = config.get("quantization_config") if isinstance(config, dict) else None
    return isinstance(quant, dict) and quant.get("quant_method") == "bitsandbytes"


def check_built(folder: Path, name: str) -> None:
    """Fail with what to do when ``folder`` holds no loadable quantized model."""
    if not (folder / MODEL_CONFIG).is_file():
        raise UsageError(
            f"The quantized model '{name}' has not been built yet (no {folder}).",
            hint=f"Build it with 'llmops quantize {name}' (or restore one: 'llmops checkout quantized/{name}@vN').",
        )
    pointers = [p for p in folder.glob("*.safetensors.ptr") if not p.with_suffix("").is_file()]
    if pointers:
        raise UnavailableError(
            f"The weights of the quantized model '{name}' are in the content store, not in {folder}.",
            hint="Run 'llmops pull' (or 'llmops checkout') to fetch them.",
        )
    adapter = shipped_adapter(folder)
    if adapter is not None:
        check_adapter_folder(adapter)


def check_built_gguf(folder: Path, name: str) -> Path:
    """The GGUF file of a ``method: gguf`` build; says how to build or fetch it when missing."""
    from llmops_cli.engines.gguf import GGUF_NAME

    gguf = folder / GGUF_NAME
    if gguf.is_file():
        return gguf
    if gguf.with_name(GGUF_NAME + ".ptr").is_file():
        raise UnavailableError(
            f"The GGUF of the quantized model '{name}' is in the content store, not in {folder}.",
            hint="Run 'llmops pull' (or 'llmops checkout') to fetch it.",
        )
    raise UsageError(
        f"The quantized model '{name}' has not been built yet (no {gguf}).",
        hint=f"Build it with 'llmops quantize {name}' (or restore one: 'llmops checkout quantized/{name}@vN').",
    )


def shipped_adapter(folder: Path) -> Path | None:
    """The LoRA adapter a ``merge: false`` build ships beside the quantized base, if any."""
    adapter = folder / ADAPTER_DIR
    return adapter if (adapter / ADAPTER_CONFIG).is_file() else None


def require_quantization_stack(purpose: str) -> None:
    for module in ("torch", "transformers", "accelerate", "bitsandbytes"):
        require(module, extra="tune", purpose=purpose)


def quiet_bitsandbytes() -> None:
    """bitsandbytes logs on every 8-bit matmul that it casts activations to float16: chatter, not news."""
    import logging

    from llmops_cli.models.quiet import quiet_libraries

    quiet_libraries()
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)


def device_map(device: str) -> dict[str, Any]:
    """bitsandbytes places weights while loading, so the device goes in as a device map."""
    import torch

    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        if not torch.cuda.is_available():
            raise UnavailableError(f"Device '{device}' was asked for, but torch sees no CUDA GPU.", hint="Use cpu.")
        return {"": torch_device.index if torch_device.index is not None else torch.cuda.current_device()}
    if torch_device.type != "cpu":
        raise UsageError(f"bitsandbytes models run on cpu or cuda, not '{device}'.")
    return {"": "cpu"}


def load_quantized_folder(folder: Path, *, device: str = "cpu", trust_remote_code: bool = False) -> Any:
    """The model in a bitsandbytes-serialized HF folder, on ``device``, in eval mode (no adapter)."""
    require_quantization_stack("Loading a quantized model")
    quiet_bitsandbytes()
    from transformers import AutoModelForCausalLM

    # dtype "auto": the non-quantized tensors keep the dtype they were saved in (bnb models cannot be cast).
    model = AutoModelForCausalLM.from_pretrained(
        str(folder),
        dtype="auto",
        device_map=device_map(device),
        local_files_only=True,
        trust_remote_code=trust_remote_code,
    )
    model.eval()
    return model


def load_quantized(
    spec: ModelSpec, folder: Path, *, device: str = "cpu", adapter_path: Path | None = None
) -> tuple[Any, Any]:
    """(model, tokenizer) from the bitsandbytes ``folder`` behind ``spec`` (see :func:`prequantized_folder`).

    The shipped adapter (``adapter/``, from ``merge: false``) or ``adapter_path`` is applied on top.
    """
    from transformers import AutoTokenizer

    name = str(spec.quantized or spec.name)
    check_built(folder, name)
    shipped = shipped_adapter(folder)
    if shipped is not None and adapter_path is not None:
        raise UsageError(
            f"The quantized model '{name}' already carries its adapter (merge: false); a second one cannot be stacked.",
            hint=f"Drop the step's adapter, or quantize with merge: true and add the adapter on top of '{name}'.",
        )
    from llmops_cli.models.trust import remote_code_allowed

    trust = remote_code_allowed(name, spec.trust_remote_code)
    model = load_quantized_folder(folder, device=device, trust_remote_code=trust)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust)
    if spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    if spec.max_context:
        tokenizer.model_max_length = spec.max_context
    adapter = adapter_path or shipped
    if adapter is not None:
        model = with_adapter(model, adapter)
    return model, tokenizer
