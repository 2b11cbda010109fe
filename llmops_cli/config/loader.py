"""Check ``llmops.yaml``: safe YAML, ``${VAR}`` expansion, JSON Schema, cross references, typed config.

``check_project`` collects *every* problem (it never stops at the first) and types the config when
there is none. The checks that need chains and prompts (what a run would refuse) live above this
package, in :mod:`llmops_cli.validation`, whose ``validate_project`` and ``load_config`` every
command uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.config.containment import ALLOW_KEY, is_inside, outside_message
from llmops_cli.config.envvars import expand, missing_message, set_project_allow
from llmops_cli.config.problems import Finding, Problem, ProblemList
from llmops_cli.config.project import ProjectConfig
from llmops_cli.config.references import RefChecker
from llmops_cli.config.schema_check import check
from llmops_cli.config.yamlpos import Located, YamlLoadError, load_located
from llmops_cli.errors import ConfigError
from llmops_cli.paths import CONFIG_NAME
from llmops_cli.resources import load_schema

# Checks a layer above config adds to validation: (data, root, prompt_files, problems) -> findings,
# each with the `path` in llmops.yaml, its `message` and `at_key`; problems of other files go
# straight into `problems`.
RuntimeCheck = Callable[[dict[str, Any], Path, dict[str, Any], list[Problem]], Iterable[Finding]]
# What a layer above config checks in a prompt file that passed its schema (Jinja syntax):
# (key path in the file, message) pairs.
PromptCheck = Callable[[dict[str, Any]], Iterable[tuple[tuple[str | int, ...], str]]]


@dataclass
class ValidationResult:
    config: ProjectConfig | None
    problems: list[Problem] = field(default_factory=list)
    prompt_files: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_yaml_file(path: Path, problems_out: list[Problem]) -> Located | None:
    """Load a YAML file; a syntax/size/bomb error is appended as a problem and None returned."""
    try:
        return load_located(path)
    except YamlLoadError as exc:
        problems_out.append(Problem(display_name(path), exc.line, exc.column, "(file)", str(exc)))
    except (OSError, UnicodeDecodeError) as exc:
        problems_out.append(Problem(display_name(path), 1, 1, "(file)", f"cannot read: {exc}"))
    return None


def _check_document(located: Located, schema: str, env: Mapping[str, str] | None) -> tuple[Any, ProblemList]:
    problems = ProblemList(located, display_name(Path(located.file)))
    for path, _mark in located.duplicates:
        problems.add(path, "duplicate key (the later value would silently win)", at_key=True)
    if not isinstance(located.data, dict):
        problems.add((), "the file must contain a mapping at top level")
        return located.data, problems

    def missing(path: tuple[str | int, ...], name: str) -> None:
        problems.add(path, missing_message(name))

    data = expand(located.data, env=env, on_missing=missing)
    check(data, load_schema(schema), problems)
    return data, problems


def check_project(
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    runtime: RuntimeCheck | None = None,
    prompt_check: PromptCheck | None = None,
) -> ValidationResult:
    """Check ``root/llmops.yaml`` and the prompt files it references; collect all problems.

    ``runtime`` adds the checks of layers above config (what a chain run or an eval would refuse)
    and ``prompt_check`` those of a prompt file (its templates' Jinja syntax);
    :func:`llmops_cli.validation.validate_project` passes them, so every command checks the same.
    """
    path = root / CONFIG_NAME
    all_problems: list[Problem] = []
    located = load_yaml_file(path, all_problems)
    if located is None:
        return ValidationResult(None, all_problems)
    raw_env = located.data.get("env") if isinstance(located.data, dict) else None
    allow = raw_env.get("allow") if isinstance(raw_env, dict) else None
    set_project_allow([str(p) for p in allow] if isinstance(allow, list) else None)
    data, problems = _check_document(located, "llmops", env)
    if isinstance(data, dict):
        RefChecker(data, root, problems).run()
    all_problems.extend(problems.items)
    prompt_files = _check_prompt_files(data, root, env, all_problems, prompt_check) if isinstance(data, dict) else {}
    if isinstance(data, dict) and runtime is not None:
        for finding in runtime(data, root, prompt_files, all_problems):
            problems.add(finding.path, finding.message, at_key=finding.at_key)
        all_problems.extend(p for p in problems.items if p not in all_problems)
    all_problems.sort()
    config = None
    if not all_problems:
        config = ProjectConfig.from_dict(data, root=root, path=path, written=located.data)
    return ValidationResult(config, all_problems, prompt_files)


def _check_prompt_files(
    data: dict[str, Any],
    root: Path,
    env: Mapping[str, str] | None,
    out: list[Problem],
    prompt_check: PromptCheck | None = None,
) -> dict[str, Any]:
    loaded: dict[str, Any] = {}
    models = data.get("models") if isinstance(data.get("models"), dict) else {}
    for name, spec in (data.get("prompts") or {}).items():
        file = spec.get("file") if isinstance(spec, dict) else None
        if not isinstance(file, str) or not (root / file).is_file():
            continue  # reported by the reference checker
        allowed = isinstance(spec, dict) and spec.get(ALLOW_KEY) is True
        if not allowed and not is_inside(root / file, root):
            continue  # reported by the reference checker; an outside file is not read at all
        located = load_yaml_file(root / file, out)
        if located is None:
            continue
        pdata, problems = _check_document(located, "prompt", env)
        if isinstance(pdata, dict):
            model = pdata.get("model")
            if isinstance(model, str) and model not in (models or {}) and model not in (data.get("quantized") or {}):
                problems.add(("model",), f"unknown model '{model}' (declare it under models: in {CONFIG_NAME})")
            examples = pdata.get("examples")
            if isinstance(examples, str) and not (root / examples).is_file():
                problems.add(("examples",), f"examples file '{examples}' does not exist")
            elif isinstance(examples, str) and not allowed and not is_inside(root / examples, root):
                problems.add(("examples",), outside_message(examples, root / examples, root, entry=f"prompts.{name}"))
            if prompt_check is not None and not problems.items:
                for key_path, message in prompt_check(pdata):
                    problems.add(key_path, message)
        out.extend(problems.items)
        loaded[name] = pdata
    return loaded


def config_error(problems: list[Problem]) -> ConfigError:
    count = len(problems)
    return ConfigError(
        f"{CONFIG_NAME} validation failed: {count} problem{'s' if count != 1 else ''}",
        problems=[str(p) for p in problems],
        hint="Fix the problems above; 'llmops schema' prints the full schema.",
    )
