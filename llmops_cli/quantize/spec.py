"""The ``quantized:`` entry ``llmops quantize`` builds: its typed spec (parsed with the project config,
see :mod:`llmops_cli.config.quantized`), looked up by name and checked for building.

``QuantizeSpec`` is the name the quantize code has always used for :class:`QuantizedSpec`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops_cli.config.quantized import COMPUTE_DTYPES, METHODS, QUANT_TYPES, QuantizedSpec, QuantSpec
from llmops_cli.config.references import check_quantized
from llmops_cli.providers.quantized import unknown_quantized_error

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

QuantizeSpec = QuantizedSpec

__all__ = [
    "COMPUTE_DTYPES",
    "METHODS",
    "QUANT_TYPES",
    "QuantSpec",
    "QuantizeSpec",
    "QuantizedSpec",
    "parse_quantize_spec",
]


def parse_quantize_spec(config: ProjectConfig, name: str) -> QuantizedSpec:
    """The ``quantized:`` entry ``name`` of ``config``, checked for building (what it refers to)."""
    if name not in config.quantized:
        raise unknown_quantized_error(config, name)
    spec = config.quantized[name]
    check_quantized(config, spec)
    return spec
