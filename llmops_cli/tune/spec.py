"""The adapter entry ``llmops tune`` trains: its typed spec (parsed with the project config, see
:mod:`llmops_cli.config.adapters`), looked up by name and checked for training.

``TuneConfig`` is the name the tuning code has always used for :class:`AdapterSpec`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops_cli.config.adapters import (
    LAUNCHERS,
    METHODS,
    PRECISIONS,
    SCHEDULERS,
    TRAINABLE_FORMATS,
    AdapterSpec,
    LauncherSpec,
    LoraSpec,
    TrainingSpec,
)
from llmops_cli.config.quantized import QuantSpec
from llmops_cli.config.references import check_adapter
from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

MAX_GRAD_NORM = 1.0  # not in llmops.yaml: the value transformers' Trainer and most LoRA recipes use
TuneConfig = AdapterSpec

__all__ = [
    "LAUNCHERS",
    "MAX_GRAD_NORM",
    "METHODS",
    "PRECISIONS",
    "SCHEDULERS",
    "TRAINABLE_FORMATS",
    "AdapterSpec",
    "LauncherSpec",
    "LoraSpec",
    "QuantSpec",
    "TrainingSpec",
    "TuneConfig",
    "parse_tune_config",
    "tune_spec",
]


def parse_tune_config(config: ProjectConfig, name: str) -> AdapterSpec:
    """The adapter entry ``name`` of ``config``, checked for training (its references, its dataset)."""
    if name not in config.adapters:
        known = ", ".join(sorted(config.adapters)) or "none"
        raise UsageError(
            f"llmops.yaml declares no adapter '{name}' (adapters: {known}).",
            hint="Add it under 'adapters:' (see 'llmops schema'), or pick one of the names above.",
        )
    spec = config.adapters[name]
    check_adapter(config, spec)
    return spec


def tune_spec(config: ProjectConfig, adapter: str | AdapterSpec) -> AdapterSpec:
    """``adapter`` as a checked spec: a name is looked up (:func:`parse_tune_config`); a spec the caller
    already got from it is used as it is."""
    return adapter if isinstance(adapter, AdapterSpec) else parse_tune_config(config, adapter)
