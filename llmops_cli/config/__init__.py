"""Project configuration: ``llmops.yaml`` checks and the typed config object (the bottom layer).

Loading a project goes through :func:`llmops_cli.validation.load_config`, which adds the checks of
the layers above (chains, prompts) to the ones here.
"""

from llmops_cli.config.loader import ValidationResult, check_project
from llmops_cli.config.problems import Problem
from llmops_cli.config.project import DatasetSpec, ModelSpec, ProjectConfig, PromptRef, StorageSpec

__all__ = [
    "DatasetSpec",
    "ModelSpec",
    "Problem",
    "ProjectConfig",
    "PromptRef",
    "StorageSpec",
    "ValidationResult",
    "check_project",
]
