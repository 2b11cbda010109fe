"""What depends on a prompt: chain steps, evals, adapters used with it, packages shipping it.

Works on the plain ``llmops.yaml`` mapping (``ProjectConfig.data``, or the file read from a git
revision), so ``prompt diff`` can ask the same question of both sides of a change, and so can
``llmops validate`` before the file is typed. Steps are named one way everywhere: ``step N (id)``,
N 1-based; a step without ``id:`` gets the id ``KIND-N`` (e.g. ``prompt-2``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.config.chains import STEP_KINDS, default_step_id

__all__ = [
    "Dependents",
    "StepUse",
    "chain_steps",
    "find_dependents",
    "prompt_steps",
    "step_id",
    "step_kind",
    "step_label",
    "step_output_name",
]

KeyPath = tuple[str | int, ...]


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def step_kind(step: Mapping[str, Any]) -> str | None:
    return next((kind for kind in STEP_KINDS if kind in step), None)


def step_id(step: Mapping[str, Any], index: int) -> str:
    """The step's ``id``, else ``KIND-N`` (N 1-based): the name traces and messages use."""
    if step.get("id"):
        return str(step["id"])
    return default_step_id(step_kind(step), index)


def step_label(index: int, sid: str | None) -> str:
    """``step 2 (generate)``: the one way a step is shown (``index`` is 0-based)."""
    return f"step {index + 1}" + (f" ({sid})" if sid else "")


def step_output_name(step: Mapping[str, Any]) -> str | None:
    """The name a step writes: ``output``, else its ``id``, else its kind."""
    if step.get("output"):
        return str(step["output"])
    if step.get("id"):
        return str(step["id"])
    return step_kind(step)


@dataclass(frozen=True)
class StepUse:
    """One chain step that renders a prompt, and what it hands over as variables."""

    chain: str
    index: int  # 0-based position in the chain's steps
    step_id: str | None  # the declared id (None when the step has none)
    explicit_vars: tuple[str, ...] | None  # keys of `vars:`; None when the step passes values implicitly
    available: tuple[str, ...]  # chain inputs and earlier step outputs (what implicit passing draws from)
    model: str | None = None
    adapter: str | None = None
    inputs_declared: bool = True  # False: the chain has no `inputs:`, any value may come in at run time

    @property
    def label(self) -> str:
        return f"chain '{self.chain}' {step_label(self.index, self.step_id or f'prompt-{self.index + 1}')}"

    @property
    def path(self) -> KeyPath:
        return ("chains", self.chain, "steps", self.index)

    def passes(self, variable: str) -> bool:
        """Whether this step hands ``variable`` to the prompt (explicitly, or by a matching chain value)."""
        if self.explicit_vars is not None:
            return variable in self.explicit_vars
        return variable in self.available

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "step": self.index + 1,
            "id": self.step_id,
            "vars": list(self.explicit_vars) if self.explicit_vars is not None else None,
            "available": list(self.available),
            "model": self.model,
            "adapter": self.adapter,
        }


def chain_steps(spec: Any) -> list[Any]:
    """The ``steps:`` list of a chain entry as written (empty when it is not a list)."""
    steps = spec.get("steps") if isinstance(spec, dict) else None
    return steps if isinstance(steps, list) else []


def prompt_steps(data: Mapping[str, Any], prompt: str | None = None) -> list[StepUse]:
    """Every chain step that renders ``prompt`` (every prompt step when None)."""
    uses: list[StepUse] = []
    for chain, spec in _section(data, "chains").items():
        if not isinstance(spec, dict):
            continue
        raw_inputs = spec.get("inputs")
        available = [str(i) for i in raw_inputs] if isinstance(raw_inputs, list) else []
        for index, step in enumerate(chain_steps(spec)):
            if not isinstance(step, dict):
                continue
            if "prompt" in step and (prompt is None or step.get("prompt") == prompt):
                raw_vars = step.get("vars")
                uses.append(
                    StepUse(
                        chain=chain,
                        index=index,
                        step_id=step.get("id"),
                        explicit_vars=tuple(raw_vars) if isinstance(raw_vars, dict) else None,
                        available=tuple(dict.fromkeys(available)),
                        model=step.get("model"),
                        adapter=step.get("adapter"),
                        inputs_declared=isinstance(raw_inputs, list),
                    )
                )
            output = step_output_name(step)
            if output:
                available.append(output)
    return uses


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
