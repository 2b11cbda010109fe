"""Project configuration: ``llmops.yaml`` loading, validation and the typed config object."""

from llmops_cli.config.loader import ValidationResult, load_config, validate_project
from llmops_cli.config.problems import Problem
from llmops_cli.config.project import DatasetSpec, Entry, ModelSpec, ProjectConfig, PromptRef, StorageSpec

__all__ = [
    "DatasetSpec",
    "Entry",
    "ModelSpec",
    "Problem",
    "ProjectConfig",
    "PromptRef",
    "StorageSpec",
    "ValidationResult",
    "load_config",
    "validate_project",
]
