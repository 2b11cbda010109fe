"""transformers' ``BitsAndBytesConfig`` from the typed bitsandbytes settings, for every caller.

One builder for QLoRA training (:mod:`llmops_cli.tune.modeling`) and ``llmops quantize``. The compute
dtype is always passed in, because the callers default it differently on purpose: training computes in
float32 on the CPU (bfloat16/float16 on a GPU), while a quantized build defaults to bfloat16 everywhere
(its non-quantized tensors are stored in that dtype, and bitsandbytes' fused CPU 4-bit kernel computes
in bfloat16). transformers and torch are imported inside the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_cli.config.quantized import QuantSpec


def bnb_config(quant: QuantSpec, compute_dtype: Any) -> Any:
    """The ``BitsAndBytesConfig`` for ``quant``; ``compute_dtype`` is a torch dtype or its name
    (``"bfloat16"``), used by 4-bit layers (8-bit LLM.int8 has no compute dtype to set)."""
    from transformers import BitsAndBytesConfig

    if quant.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if isinstance(compute_dtype, str):
        import torch

        compute_dtype = getattr(torch, compute_dtype)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
    )
