"""A ``quantized:`` entry of llmops.yaml as typed settings, with the schema's defaults filled in.

The document already passed JSON Schema validation; this module adds the defaults and the cross-field
rules the schema cannot express: the model must be local, the adapter must be trained on that model,
and a quality limit needs a suite to measure it with.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import ConfigError
from llmops_cli.providers.quantized import unknown_quantized_error

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

QUANT_TYPES = ("nf4", "fp4")
METHODS = ("bitsandbytes", "gguf")
COMPUTE_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class QuantizeSpec:
    """Everything ``llmops quantize NAME`` needs from the entry, defaults resolved."""

    name: str
    model: str  # entry under models:
    bits: int  # 4 or 8 (bitsandbytes); 0 for gguf, whose type says it
    adapter: str | None = None  # entry under adapters:
    method: str = "bitsandbytes"  # or "gguf" (llama.cpp)
    gguf_type: str = "q8_0"  # gguf only: q8_0, q4_k_m, f16, ...
    merge: bool = False
    quant_type: str = "nf4"  # 4-bit only
    double_quant: bool = True  # 4-bit only
    compute_dtype: str | None = None  # None: bfloat16 (float16 on a GPU without bfloat16)
    check_with: str | None = None  # eval suite under evals:
    max_quality_drop: float | None = None
    description: str = ""

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_quantize_spec(config: ProjectConfig, name: str) -> QuantizeSpec:
    """The ``quantized:`` entry ``name`` of ``config``; checks what it refers to."""
    if name not in config.quantized:
        raise unknown_quantized_error(config, name)
    raw = dict(config.quantized[name].raw)
    method = str(raw.get("method", "bitsandbytes"))
    spec = QuantizeSpec(
        name=name,
        model=str(raw["model"]),
        bits=int(raw.get("bits") or 0),
        method=method,
        gguf_type=str(raw.get("type", "q8_0")),
        adapter=raw.get("adapter"),
        merge=bool(raw.get("merge", False)),
        quant_type=str(raw.get("quant_type", "nf4")),
        double_quant=bool(raw.get("double_quant", True)),
        compute_dtype=raw.get("compute_dtype"),
        check_with=raw.get("check_with"),
        max_quality_drop=None if raw.get("max_quality_drop") is None else float(raw["max_quality_drop"]),
        description=str(raw.get("description", "")),
    )
    _check(config, spec)
    return spec


def _check(config: ProjectConfig, spec: QuantizeSpec) -> None:
    where = f"quantized.{spec.name}"
    if spec.method not in METHODS:
        raise ConfigError(f"{where}.method: '{spec.method}' is not one of {', '.join(METHODS)}")
    if spec.method == "gguf":
        _check_gguf(config, spec, where)
    elif "type" in config.quantized[spec.name].raw:
        raise ConfigError(
            f"{where}.type is a GGUF type; this entry uses method: bitsandbytes.",
            hint="Add method: gguf, or use bits/quant_type for bitsandbytes.",
        )
    elif spec.bits not in (4, 8):
        hint = "Use 4 or 8." if spec.bits else "Add bits: 4 or bits: 8 (or method: gguf with a type)."
        raise ConfigError(f"{where}.bits: {spec.bits or 'missing'} is not supported", hint=hint)
    if spec.quant_type not in QUANT_TYPES:
        raise ConfigError(f"{where}.quant_type: '{spec.quant_type}' is not one of {', '.join(QUANT_TYPES)}")
    if spec.compute_dtype is not None and spec.compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"{where}.compute_dtype: '{spec.compute_dtype}' is not one of {', '.join(COMPUTE_DTYPES)}")
    model = config.models.get(spec.model)
    if model is None:
        raise ConfigError(f"{where}.model: no model '{spec.model}' under models:")
    if model.is_remote:
        raise ConfigError(
            f"{where}.model: '{spec.model}' is a remote model ({model.provider}); only local weights can be quantized.",
            hint="Point 'model:' at an entry with a 'source:'.",
        )
    if spec.adapter is not None:
        adapter = config.adapters.get(spec.adapter)
        if adapter is None:
            raise ConfigError(f"{where}.adapter: no adapter '{spec.adapter}' under adapters:")
        if adapter.get("base") != spec.model:
            raise ConfigError(
                f"{where}.adapter: '{spec.adapter}' was trained on '{adapter.get('base')}', not on '{spec.model}'.",
                hint=f"Set model: {adapter.get('base')}, or pick an adapter trained on '{spec.model}'.",
            )
    elif spec.merge:
        raise ConfigError(f"{where}.merge: true needs an 'adapter:' to merge.")
    if spec.check_with is not None and spec.check_with not in config.evals:
        raise ConfigError(f"{where}.check_with: no eval suite '{spec.check_with}' under evals:")
    if spec.max_quality_drop is not None and spec.check_with is None:
        # A gate that silently never runs is worse than no gate: CI would pass without checking.
        raise ConfigError(
            f"{where}.max_quality_drop is set but there is no check_with suite to measure the drop with.",
            hint="Add check_with: <eval suite>, or remove max_quality_drop.",
        )


def _check_gguf(config: ProjectConfig, spec: QuantizeSpec, where: str) -> None:
    from llmops_cli.engines.gguf import GGUF_TYPES

    raw = config.quantized[spec.name].raw
    if spec.gguf_type not in GGUF_TYPES:
        close = difflib.get_close_matches(spec.gguf_type, list(GGUF_TYPES), n=1)
        raise ConfigError(
            f"{where}.type: '{spec.gguf_type}' is not a GGUF type llmops makes",
            hint=f"Did you mean '{close[0]}'?" if close else f"Use one of: {', '.join(GGUF_TYPES)}.",
        )
    for key in ("bits", "quant_type", "double_quant", "compute_dtype"):
        if key in raw:
            raise ConfigError(
                f"{where}.{key} applies to method: bitsandbytes; a GGUF's type ({spec.gguf_type}) sets its precision.",
                hint=f"Remove {key}.",
            )
    if spec.adapter is not None and not spec.merge:
        raise ConfigError(
            f"{where}: a GGUF build carries its adapter merged into the weights; set merge: true.",
            hint="llama.cpp can also apply a separate LoRA at run time: use the adapter with the base model instead.",
        )
