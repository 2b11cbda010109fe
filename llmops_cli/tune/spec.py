"""An ``adapters:`` entry of llmops.yaml as typed settings, with the schema's defaults filled in.

The document already passed JSON Schema validation, so shapes are trusted here; this module adds the
defaults (kept equal to ``schemas/llmops.schema.json``, a test checks it) and the cross-field rules the
schema cannot express (the base must be a local model, the dataset must hold training records).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

TRAINABLE_FORMATS = ("chat", "instruction", "qa", "text")
METHODS = ("lora", "qlora")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LAUNCHERS = ("single", "accelerate")
MAX_GRAD_NORM = 1.0  # not in llmops.yaml: the value transformers' Trainer and most LoRA recipes use


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    alpha: float = 32
    dropout: float = 0.05
    # None lets peft pick its per-architecture default (q_proj and v_proj for Llama-style models).
    target_modules: tuple[str, ...] | str | None = None
    bias: str = "none"


@dataclass(frozen=True)
class QuantSpec:
    """How the base model is quantized while training (QLoRA)."""

    bits: int = 4
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str | None = None  # None: bfloat16/float16 on a GPU, float32 on the CPU


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
class TuneConfig:
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

    def with_max_steps(self, max_steps: int | None) -> TuneConfig:
        """The same config with ``training.max_steps`` overridden (``--max-steps``); None keeps it."""
        if max_steps is None:
            return self
        if max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1 (got {max_steps}).")
        return dataclasses.replace(self, training=dataclasses.replace(self.training, max_steps=max_steps))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able settings (for train_config.json and the artifact's params)."""
        data = dataclasses.asdict(self)
        if isinstance(self.lora.target_modules, tuple):
            data["lora"]["target_modules"] = list(self.lora.target_modules)
        return data


def _build(cls: type[Any], raw: dict[str, Any] | None, where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    values = dict(raw or {})
    unknown = sorted(set(values) - known)
    if unknown:  # the schema forbids these already; this guards direct library use
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    return cls(**values)


def parse_tune_config(config: ProjectConfig, name: str) -> TuneConfig:
    """The adapter entry ``name`` of ``config`` as a :class:`TuneConfig`; checks its references."""
    if name not in config.adapters:
        known = ", ".join(sorted(config.adapters)) or "none"
        raise UsageError(
            f"llmops.yaml declares no adapter '{name}' (adapters: {known}).",
            hint="Add it under 'adapters:' (see 'llmops schema'), or pick one of the names above.",
        )
    raw = dict(config.adapters[name].raw)
    where = f"adapters.{name}"
    method = raw.get("method", "lora")
    lora_raw = dict(raw.get("lora") or {})
    if isinstance(lora_raw.get("target_modules"), list):
        lora_raw["target_modules"] = tuple(lora_raw["target_modules"])
    quant_raw = raw.get("quantization")
    if method == "lora" and quant_raw:
        raise ConfigError(
            f"{where}: 'quantization' is only used with method: qlora, but the method is lora.",
            hint="Set method: qlora to train on a quantized base, or remove the quantization block.",
        )
    tune = TuneConfig(
        name=name,
        base=raw["base"],
        dataset=raw["dataset"],
        method=method,
        lora=_build(LoraSpec, lora_raw, f"{where}.lora"),
        quantization=_build(QuantSpec, quant_raw, f"{where}.quantization") if method == "qlora" else None,
        training=_build(TrainingSpec, raw.get("training"), f"{where}.training"),
        launcher=_build(LauncherSpec, raw.get("launcher"), f"{where}.launcher"),
        description=raw.get("description", ""),
    )
    _check_references(config, tune)
    return tune


def _check_references(config: ProjectConfig, tune: TuneConfig) -> None:
    where = f"adapters.{tune.name}"
    model = config.models.get(tune.base)
    if model is None:
        raise ConfigError(f"{where}.base: no model named '{tune.base}' under 'models:'.")
    if model.is_remote:
        raise ConfigError(
            f"{where}.base: model '{tune.base}' is a remote API ({model.base_url}); LoRA needs local weights.",
            hint="Point base: at a model with 'source:' (the embedded default, an HF folder, a .gguf or a hub id).",
        )
    dataset = config.datasets.get(tune.dataset)
    if dataset is None:
        raise ConfigError(f"{where}.dataset: no dataset named '{tune.dataset}' under 'datasets:'.")
    if dataset.format not in TRAINABLE_FORMATS:
        raise ConfigError(
            f"{where}.dataset: dataset '{tune.dataset}' has format '{dataset.format}', "
            "which holds no training records.",
            hint=f"Train on a dataset whose format is one of: {', '.join(TRAINABLE_FORMATS)}.",
        )
    if tune.quantization is not None and tune.quantization.bits == 8 and tune.quantization.quant_type != "nf4":
        raise ConfigError(f"{where}.quantization.quant_type applies to 4-bit only; remove it for bits: 8.")
