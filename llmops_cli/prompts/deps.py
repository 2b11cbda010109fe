"""What depends on a prompt: chain steps, evals, adapters used with it, packages shipping it.

Works on the plain ``llmops.yaml`` mapping (``ProjectConfig.data``, or the file read from a git
revision), so ``prompt diff`` can ask the same question of both sides of a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.chains.analysis import StepUse, prompt_steps, step_output_name

__all__ = ["Dependents", "StepUse", "find_dependents", "step_output_name"]


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Dependents:
    prompt: str
    steps: tuple[StepUse, ...] = ()
    chains: tuple[str, ...] = ()
    evals: tuple[str, ...] = ()
    direct_evals: tuple[str, ...] = ()  # evals whose target is the prompt itself
    adapters: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    direct_packages: tuple[str, ...] = ()  # packages listing the prompt under `prompts:`
    references: tuple[str, ...] = field(default=(), compare=False)  # readable "where it is named"

    @property
    def empty(self) -> bool:
        return not (self.chains or self.evals or self.packages)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chains": list(self.chains),
            "evals": list(self.evals),
            "adapters": list(self.adapters),
            "packages": list(self.packages),
            "steps": [s.as_dict() for s in self.steps],
        }


def find_dependents(data: Mapping[str, Any], prompt: str) -> Dependents:
    """Everything in the config ``data`` that uses the prompt named ``prompt``."""
    steps = prompt_steps(data, prompt)
    chains = list(dict.fromkeys(s.chain for s in steps))
    references = [f"{s.label} renders it" for s in steps]
    adapters = [s.adapter for s in steps if s.adapter]
    evals: list[str] = []
    direct_evals: list[str] = []
    for name, spec in _section(data, "evals").items():
        target = spec.get("target") if isinstance(spec, dict) else None
        if not isinstance(target, dict):
            continue
        if target.get("prompt") == prompt:
            evals.append(name)
            direct_evals.append(name)
            references.append(f"eval '{name}' targets it")
            if target.get("adapter"):
                adapters.append(str(target["adapter"]))
        elif target.get("chain") in chains:
            evals.append(name)
    packages: list[str] = []
    direct_packages: list[str] = []
    for name, spec in _section(data, "packages").items():
        if not isinstance(spec, dict):
            continue
        if prompt in (spec.get("prompts") or []):
            packages.append(name)
            direct_packages.append(name)
            references.append(f"package '{name}' ships it (prompts:)")
        elif spec.get("chain") in chains:
            packages.append(name)
    return Dependents(
        prompt=prompt,
        steps=tuple(steps),
        chains=tuple(chains),
        evals=tuple(evals),
        direct_evals=tuple(direct_evals),
        adapters=tuple(dict.fromkeys(adapters)),
        packages=tuple(packages),
        direct_packages=tuple(direct_packages),
        references=tuple(references),
    )
