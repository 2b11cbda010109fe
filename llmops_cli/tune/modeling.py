"""Base model and tokenizer for training: full precision (LoRA) or bitsandbytes 4/8-bit (QLoRA).

torch, transformers, peft and bitsandbytes are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.errors import ConfigError, UsageError, require
from llmops_cli.models.quiet import quiet_libraries
from llmops_cli.tune.spec import AdapterSpec


@dataclass(frozen=True)
class BaseModel:
    """The local weights a run trains on, and the model entry's loading options."""

    name: str  # entry name under models:
    source: str  # as written in llmops.yaml (recorded as the adapter's base_model_name_or_path)
    folder: Path  # a plain HF folder (GGUF sources are materialized first)
    dtype: str = "auto"
    trust_remote_code: bool = False
    chat_template: str | None = None
    max_context: int | None = None

    @classmethod
    def from_spec(cls, spec: Any, folder: Path) -> BaseModel:
        from llmops_cli.models.trust import remote_code_allowed

        return cls(
            name=spec.name,
            source=spec.source or str(folder),
            folder=folder,
            dtype=spec.dtype,
            trust_remote_code=remote_code_allowed(spec.name, spec.trust_remote_code),
            chat_template=spec.chat_template,
            max_context=spec.max_context,
        )


def require_training_stack(method: str) -> None:
    for module in ("torch", "transformers", "peft", "accelerate"):
        require(module, extra="tune", purpose="Training an adapter")
    if method == "qlora":
        require("bitsandbytes", extra="tune", purpose="QLoRA (a quantized base model)")


def load_tokenizer(base: BaseModel) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        str(base.folder), local_files_only=True, trust_remote_code=base.trust_remote_code
    )
    if base.chat_template:
        tokenizer.chat_template = base.chat_template
    if base.max_context:
        tokenizer.model_max_length = int(base.max_context)
    if tokenizer.pad_token_id is None:  # padding is masked out of the loss, any id will do
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def compute_dtype(name: str | None, device_type: str) -> Any:
    """The dtype matmuls run in: bfloat16 (else float16) on a GPU, float32 on the CPU, unless set."""
    import torch

    if name:
        return getattr(torch, name)
    if device_type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def lora_config(tune: AdapterSpec) -> Any:
    from peft import LoraConfig

    targets = tune.lora.target_modules
    alpha = tune.lora.alpha
    # peft types lora_alpha as int but only divides by r; keep a fractional alpha as it was written.
    lora_alpha: Any = int(alpha) if float(alpha).is_integer() else alpha
    bias: Any = tune.lora.bias
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=tune.lora.r,
        lora_alpha=lora_alpha,
        lora_dropout=tune.lora.dropout,
        target_modules=list(targets) if isinstance(targets, tuple) else targets,
        bias=bias,
    )


def weights_dtype(base: BaseModel, device_type: str) -> Any:
    from llmops_cli.models import torch_dtype

    return torch_dtype(base.dtype, "cuda" if device_type == "cuda" else "cpu")


def load_for_training(tune: AdapterSpec, base: BaseModel, device: Any) -> Any:
    """The base model with fresh LoRA layers (only those trainable), on ``device``.

    Call after seeding: the LoRA A matrices are drawn from the global torch generator.
    """
    quiet_libraries()
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    options: dict[str, Any] = {
        "local_files_only": True,
        "trust_remote_code": base.trust_remote_code,
        "dtype": weights_dtype(base, device.type),
    }
    if tune.quantization is not None:
        from llmops_cli.models.bnb import bnb_config

        # Training computes in float32 on the CPU (see compute_dtype), unlike a quantized build.
        quant = tune.quantization
        options["quantization_config"] = bnb_config(quant, compute_dtype(quant.compute_dtype, device.type))
        # bitsandbytes places quantized weights at load time; one whole copy per process.
        options["device_map"] = {"": device.index if device.type == "cuda" else device.type}
    with no_progress_bars():  # the caller draws its own progress; tqdm lines would tear through it
        model = AutoModelForCausalLM.from_pretrained(str(base.folder), **options)
    model.config.use_cache = False  # the KV cache is for generation; training only wastes memory on it
    if tune.quantization is not None:
        keep_4bit_trainable(model)
        # Activation checkpointing trades ~30% speed for memory: worth it on a GPU, where QLoRA runs
        # out of memory first; on the CPU there is RAM to spare and the time is what hurts.
        checkpointing = device.type == "cuda"
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        )
    return wrap_lora(model, tune)


def keep_4bit_trainable(model: Any) -> None:
    """Stop bitsandbytes from switching 4-bit weights to its CPU inference layout.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a ``Linear4bit`` weight the first time it runs
    in eval mode without gradients, and the matmul it then uses has no backward: every training step
    after the first evaluation gets zero gradients (measured here: grad_norm 0.0, eval loss frozen).
    Training evaluates between steps, so the repacking is switched off per layer.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    import transformers

    enabled = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers.utils.logging.enable_progress_bar()


def wrap_lora(model: Any, tune: AdapterSpec) -> Any:
    from peft import get_peft_model

    try:
        return get_peft_model(model, lora_config(tune))
    except ValueError as error:
        raise ConfigError(
            f"adapters.{tune.name}.lora: {error}",
            hint="List the model's linear layer names in target_modules (e.g. [q_proj, v_proj]) or use 'all-linear'.",
        ) from error


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights are counted as their logical size."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if param.__class__.__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored byte
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def meta_model(tune: AdapterSpec, base: BaseModel) -> Any:
    """The LoRA-wrapped model on the meta device: shapes and counts without loading any weight."""
    quiet_libraries()
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(
        str(base.folder), local_files_only=True, trust_remote_code=base.trust_remote_code
    )
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=base.trust_remote_code)
    model.tie_weights()  # from_config leaves tied embeddings as two tensors on the meta device
    return wrap_lora(model, tune)


def check_device(precision: str) -> None:
    """Refuse half precision the hardware cannot train in, with what to do instead."""
    import torch

    if precision == "fp16" and not torch.cuda.is_available():
        raise UsageError(
            "training.precision fp16 needs a CUDA GPU; torch sees none.",
            hint="Use precision: auto (float32 on the CPU) or bf16.",
        )
