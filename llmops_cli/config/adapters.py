"""``adapters:`` entries as typed specs, with the schema's defaults filled in.

Parsed once by :meth:`ProjectConfig.from_dict` from a document that already passed JSON Schema
validation; the defaults are kept equal to ``schemas/llmops.schema.json`` (a test checks it). The
cross-field rules the schema cannot express (the base must be a local model, the dataset must hold
training records) are checked where the entry is used, by
:func:`llmops_cli.config.references.check_adapter`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.config.quantized import QuantSpec
from llmops_cli.errors import ConfigError, UsageError

TRAINABLE_FORMATS = ("chat", "instruction", "qa", "text")
METHODS = ("lora", "qlora")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LAUNCHERS = ("single", "accelerate")


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    alpha: float = 32
    dropout: float = 0.05
    # None lets peft pick its per-architecture default (q_proj and v_proj for Llama-style models).
    target_modules: tuple[str, ...] | str | None = None
    bias: str = "none"


@dataclass(frozen=True)
class TrainingSpec:
    epochs: float = 1
    max_steps: int | None = None
    learning_rate: float = 2e-4
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_seq_len: int = 512
    packing: bool = False
    seed: int = 42
    eval_split: float = 0.1
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    save_steps: int = 50
    logging_steps: int = 10
    precision: str = "auto"


@dataclass(frozen=True)
class LauncherSpec:
    type: str = "single"
    num_processes: int | None = None
    config_file: str | None = None
    timeout_s: int = 600  # collectives (all-reduce, barriers) fail after this instead of hanging


@dataclass(frozen=True)
class AdapterSpec:
    """Everything ``llmops tune NAME`` needs from the adapter entry, defaults resolved."""

    name: str
    base: str
    dataset: str
    method: str = "lora"
    lora: LoraSpec = field(default_factory=LoraSpec)
    quantization: QuantSpec | None = None  # set (with defaults) exactly when method is qlora
    training: TrainingSpec = field(default_factory=TrainingSpec)
    launcher: LauncherSpec = field(default_factory=LauncherSpec)
    description: str = ""
    # Blocks written in the yaml with content (an empty mapping counts as not written); not settings.
    declared: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def with_max_steps(self, max_steps: int | None) -> AdapterSpec:
        """The same spec with ``training.max_steps`` overridden (``--max-steps``); None keeps it."""
        if max_steps is None:
            return self
        if max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1 (got {max_steps}).")
        return dataclasses.replace(self, training=dataclasses.replace(self.training, max_steps=max_steps))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able settings (for train_config.json and the artifact's params)."""
        data = dataclasses.asdict(self)
        del data["declared"]
        if isinstance(self.lora.target_modules, tuple):
            data["lora"]["target_modules"] = list(self.lora.target_modules)
        return data


def _build(cls: type[Any], raw: Mapping[str, Any] | None, where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    values = dict(raw or {})
    unknown = sorted(set(values) - known)
    if unknown:  # the schema forbids these already; this guards direct library use
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    return cls(**values)


def parse_adapter(name: str, raw: Mapping[str, Any]) -> AdapterSpec:
    where = f"adapters.{name}"
    method = raw.get("method", "lora")
    lora_raw = dict(raw.get("lora") or {})
    if isinstance(lora_raw.get("target_modules"), list):
        lora_raw["target_modules"] = tuple(lora_raw["target_modules"])
    quant_raw = raw.get("quantization")
    return AdapterSpec(
        name=name,
        base=raw["base"],
        dataset=raw["dataset"],
        method=method,
        lora=_build(LoraSpec, lora_raw, f"{where}.lora"),
        quantization=_build(QuantSpec, quant_raw, f"{where}.quantization") if method == "qlora" else None,
        training=_build(TrainingSpec, raw.get("training"), f"{where}.training"),
        launcher=_build(LauncherSpec, raw.get("launcher"), f"{where}.launcher"),
        description=raw.get("description", ""),
        declared=frozenset(k for k, v in raw.items() if v != {}),
    )


def parse_adapters(section: Mapping[str, Any] | None) -> dict[str, AdapterSpec]:
    """The ``adapters:`` section, entry name -> spec."""
    return {name: parse_adapter(name, raw) for name, raw in (section or {}).items()}
