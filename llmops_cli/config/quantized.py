"""``quantized:`` entries as typed specs, and the bitsandbytes settings they share with QLoRA adapters.

Parsed once by :meth:`ProjectConfig.from_dict` from a document that already passed JSON Schema
validation; defaults equal the schema's. Cross-field rules the schema cannot express (the model must be
local, the adapter trained on it, a quality limit needs a suite) are checked where the entry is used,
by :func:`llmops_cli.config.references.check_quantized`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

QUANT_TYPES = ("nf4", "fp4")
METHODS = ("bitsandbytes", "gguf")
COMPUTE_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class QuantSpec:
    """bitsandbytes settings: a ``quantized:`` entry's, or a QLoRA adapter's ``quantization:`` block."""

    bits: int = 4
    quant_type: str = "nf4"  # 4-bit only
    double_quant: bool = True  # 4-bit only
    compute_dtype: str | None = None  # None: each caller's default (see llmops_cli.models.bnb)


@dataclass(frozen=True)
class QuantizedSpec:
    """Everything ``llmops quantize NAME`` needs from the entry, defaults resolved."""

    name: str
    model: str  # entry under models:
    quant: QuantSpec = field(default_factory=QuantSpec)  # bits 0 when not given (gguf: its type says it)
    adapter: str | None = None  # entry under adapters:
    method: str = "bitsandbytes"  # or "gguf" (llama.cpp)
    gguf_type: str = "q8_0"  # gguf only: q8_0, q4_k_m, f16, ...
    merge: bool = False
    check_with: str | None = None  # eval suite under evals:
    max_quality_drop: float | None = None
    description: str = ""
    declared: frozenset[str] = field(default=frozenset(), compare=False, repr=False)  # keys written in the yaml

    @property
    def bits(self) -> int:
        return self.quant.bits

    @property
    def quant_type(self) -> str:
        return self.quant.quant_type

    @property
    def double_quant(self) -> bool:
        return self.quant.double_quant

    @property
    def compute_dtype(self) -> str | None:
        return self.quant.compute_dtype

    @property
    def ships_adapter(self) -> bool:
        """The adapter stays a separate LoRA next to the quantized base (``merge: false``)."""
        return self.adapter is not None and not self.merge

    def params(self, compute_dtype: str) -> dict[str, Any]:
        """The settings recorded with each version (``compute_dtype`` as resolved on this run)."""
        if self.method == "gguf":
            gguf: dict[str, Any] = {"method": "gguf", "type": self.gguf_type, "model": self.model}
            gguf.update(adapter=self.adapter, merge=self.merge)
            if self.check_with:
                gguf.update(check_with=self.check_with, max_quality_drop=self.max_quality_drop)
            return gguf
        params: dict[str, Any] = {"bits": self.bits, "model": self.model, "adapter": self.adapter, "merge": self.merge}
        if self.bits == 4:
            params.update(quant_type=self.quant_type, double_quant=self.double_quant)
        params["compute_dtype"] = compute_dtype
        if self.check_with:
            params.update(check_with=self.check_with, max_quality_drop=self.max_quality_drop)
        return params


def parse_quantized_entry(name: str, raw: Mapping[str, Any]) -> QuantizedSpec:
    quant = QuantSpec(
        bits=int(raw.get("bits") or 0),
        quant_type=str(raw.get("quant_type", "nf4")),
        double_quant=bool(raw.get("double_quant", True)),
        compute_dtype=raw.get("compute_dtype"),
    )
    return QuantizedSpec(
        name=name,
        model=str(raw["model"]),
        quant=quant,
        adapter=raw.get("adapter"),
        method=str(raw.get("method", "bitsandbytes")),
        gguf_type=str(raw.get("type", "q8_0")),
        merge=bool(raw.get("merge", False)),
        check_with=raw.get("check_with"),
        max_quality_drop=None if raw.get("max_quality_drop") is None else float(raw["max_quality_drop"]),
        description=str(raw.get("description", "")),
        declared=frozenset(raw),
    )


def parse_quantized(section: Mapping[str, Any] | None) -> dict[str, QuantizedSpec]:
    """The ``quantized:`` section, entry name -> spec."""
    return {name: parse_quantized_entry(name, raw) for name, raw in (section or {}).items()}
