"""Validate and load a project: ``llmops.yaml`` checked by :mod:`llmops_cli.config`, plus what a
run would refuse later (chain step variables against their prompts, references to later or unknown
step outputs, adapters on another base model, eval targets needing fields their dataset lacks).

``validate_project`` collects *every* problem (it never stops at the first); ``load_config`` raises
one :class:`~llmops_cli.errors.ConfigError` carrying them all, or returns a ``ProjectConfig``.
This module sits above config, chains and prompts: config is the bottom layer and cannot ask them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmops_cli.config.loader import ValidationResult, check_project, config_error, display_name
from llmops_cli.config.problems import Finding, Problem
from llmops_cli.config.project import ProjectConfig
from llmops_cli.errors import ConfigError

__all__ = ["ValidationResult", "load_config", "validate_project"]


def validate_project(root: Path, *, env: Mapping[str, str] | None = None) -> ValidationResult:
    """Check ``root/llmops.yaml``, the prompt files it references and what runs would refuse."""
    from llmops_cli.prompts.spec import syntax_problems

    return check_project(root, env=env, runtime=runtime_findings, prompt_check=syntax_problems)


def load_config(root: Path, *, env: Mapping[str, str] | None = None) -> ProjectConfig:
    """The typed config of the project at ``root``; raises ConfigError listing every problem."""
    result = validate_project(root, env=env if env is not None else os.environ)
    if result.config is None:
        raise config_error(result.problems)
    return result.config


def runtime_findings(
    data: dict[str, Any], root: Path, prompt_files: dict[str, Any], found: list[Problem]
) -> list[Finding]:
    """What ``chain run`` and ``eval`` would refuse later (:mod:`llmops_cli.chains.analysis`); problems
    of few-shot example files go straight into ``found``."""
    from llmops_cli.chains.analysis import analyze_project
    from llmops_cli.prompts.checks import example_findings
    from llmops_cli.prompts.spec import disk_reader, parse_prompt

    invalid = {p.file for p in found}
    specs: dict[str, Any] = {}

    def lookup(name: str) -> Any:
        if name not in specs:
            spec = None
            raw = prompt_files.get(name)
            ref = (data.get("prompts") or {}).get(name)
            file = ref.get("file") if isinstance(ref, dict) else None
            if isinstance(raw, dict) and isinstance(file, str) and display_name(root / file) not in invalid:
                try:
                    spec = parse_prompt(raw, name=name, file=file)
                except ConfigError:
                    spec = None  # its problems are reported with the prompt file
            specs[name] = spec
        return specs[name]

    for name in prompt_files:
        spec = lookup(name)
        if (
            spec is None
            or not isinstance(spec.examples_file, str)
            or display_name(root / spec.examples_file) in invalid
        ):
            continue
        text = disk_reader(root)(spec.examples_file)
        for line, message in example_findings(spec, text or ""):
            found.append(Problem(display_name(root / spec.examples_file), line, 1, "(example)", message))
    return analyze_project(data, lookup, root=root)
