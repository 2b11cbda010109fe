"""bitsandbytes 4/8-bit quantized variants of models (``llmops quantize``), and loading them back.

Importing this package is cheap: torch, transformers, peft and bitsandbytes are imported inside the
functions that use them.
"""

from llmops_cli.models.bnb import bnb_config
from llmops_cli.models.identity import quantized_folder
from llmops_cli.providers.quantized import (
    is_quantized_spec,
    load_quantized,
    prequantized_folder,
    quantized_model_spec,
    shipped_adapter,
)
from llmops_cli.quantize.measure import FIXED_PROMPT, Measurement
from llmops_cli.quantize.pipeline import quantize, resolve_compute_dtype, resolve_device
from llmops_cli.quantize.quality import MetricDelta, QualityReport, compare_results, run_quality_check
from llmops_cli.quantize.result import QuantizeResult
from llmops_cli.quantize.spec import QuantizeSpec, parse_quantize_spec

__all__ = [
    "FIXED_PROMPT",
    "Measurement",
    "MetricDelta",
    "QualityReport",
    "QuantizeResult",
    "QuantizeSpec",
    "bnb_config",
    "compare_results",
    "is_quantized_spec",
    "load_quantized",
    "parse_quantize_spec",
    "prequantized_folder",
    "quantize",
    "quantized_folder",
    "quantized_model_spec",
    "resolve_compute_dtype",
    "resolve_device",
    "run_quality_check",
    "shipped_adapter",
]
