"""LoRA / QLoRA fine-tuning of adapters declared in llmops.yaml (``llmops tune``).

Importing this package is cheap: torch, transformers, peft, accelerate and bitsandbytes are
imported inside the functions that use them.
"""

from llmops_cli.tune.launcher import Launch, accelerate_command, choose_launch, launch_tune
from llmops_cli.tune.merge import MergeResult, merge_adapter
from llmops_cli.tune.pipeline import TuneResult, execute_run, open_run, plan_tune, run_tune, stop_on_signals
from llmops_cli.tune.plan import TunePlan
from llmops_cli.tune.spec import LauncherSpec, LoraSpec, QuantSpec, TrainingSpec, TuneConfig, parse_tune_config
from llmops_cli.tune.trainer import TrainEvent, TrainingInterrupted, TrainResult, train

__all__ = [
    "Launch",
    "LauncherSpec",
    "LoraSpec",
    "MergeResult",
    "QuantSpec",
    "TrainEvent",
    "TrainResult",
    "TrainingInterrupted",
    "TrainingSpec",
    "TuneConfig",
    "TunePlan",
    "TuneResult",
    "accelerate_command",
    "choose_launch",
    "execute_run",
    "launch_tune",
    "merge_adapter",
    "open_run",
    "parse_tune_config",
    "plan_tune",
    "run_tune",
    "stop_on_signals",
    "train",
]
