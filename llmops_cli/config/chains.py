"""The ``chains:`` section: one :class:`ChainSpec` per chain, one typed class per step kind.

Parsed from a document that already passed JSON Schema validation, so shapes are trusted; names a
step mentions (prompt, model, adapter, retriever) stay names, checked by
:mod:`llmops_cli.config.references`. Steps are named one way everywhere: a step without ``id:`` is
``KIND-N`` (N 1-based), and writes its ``output``, else its ``id``, else its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

STEP_KINDS = ("prompt", "retrieve", "transform", "call")
DEFAULT_QUERY = "{{ question }}"  # what a retrieve step searches for without `query:`


def default_step_id(kind: str | None, index: int) -> str:
    """``KIND-N`` (``index`` 0-based, N 1-based): the id of a step that declares none."""
    return f"{kind or 'step'}-{index + 1}"


@dataclass(frozen=True, kw_only=True)
class Step:
    """What every step has: an optional ``id``, ``output`` name and ``when`` condition."""

    kind: ClassVar[str] = ""
    id: str | None = None
    output: str | None = None
    when: str | None = None

    @property
    def target(self) -> str:
        """The prompt / retriever / transform / function the step uses."""
        return str(getattr(self, self.kind))

    @property
    def output_name(self) -> str:
        """The name the step writes into the run's context."""
        return self.output or self.id or self.kind

    def step_id(self, index: int) -> str:
        return self.id or default_step_id(self.kind, index)


@dataclass(frozen=True, kw_only=True)
class PromptStep(Step):
    kind: ClassVar[str] = "prompt"
    prompt: str
    model: str | None = None
    adapter: str | None = None
    params: Mapping[str, Any] | None = field(default=None, compare=False)
    vars: Mapping[str, str] | None = field(default=None, compare=False)  # None: pass chain values by name


@dataclass(frozen=True, kw_only=True)
class RetrieveStep(Step):
    kind: ClassVar[str] = "retrieve"
    retrieve: str
    query: str = DEFAULT_QUERY
    top_k: int | None = None


@dataclass(frozen=True, kw_only=True)
class TransformStep(Step):
    kind: ClassVar[str] = "transform"
    transform: str  # template | json_parse | regex_extract
    input: str | None = None
    template: str | None = None
    pattern: str | None = None
    group: int | str = 0

    @property
    def source(self) -> str:
        """The template the transform renders first (``input``, else ``template``)."""
        return self.input or self.template or ""


@dataclass(frozen=True, kw_only=True)
class CallStep(Step):
    kind: ClassVar[str] = "call"
    call: str  # module:function
    args: Mapping[str, Any] = field(default_factory=dict, compare=False)


ChainStep = PromptStep | RetrieveStep | TransformStep | CallStep


@dataclass(frozen=True)
class ChainSpec:
    name: str
    steps: tuple[ChainStep, ...]
    inputs: tuple[str, ...] = ()
    output: str | None = None  # the value the chain returns; None: the last step's output
    description: str = ""

    def prompt_steps(self) -> tuple[PromptStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, PromptStep))

    def prompt_names(self) -> list[str]:
        """The prompts the steps use, in step order, each once."""
        return list(dict.fromkeys(s.prompt for s in self.prompt_steps()))


def _common(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(raw["id"]) if raw.get("id") else None,
        "output": str(raw["output"]) if raw.get("output") else None,
        "when": raw.get("when"),
    }


def parse_step(raw: Mapping[str, Any]) -> ChainStep:
    """One schema-valid step mapping, typed; ValueError when it has not exactly one kind."""
    kinds = [k for k in STEP_KINDS if k in raw]
    if len(kinds) != 1:  # the schema already enforces this
        raise ValueError(f"a chain step needs exactly one of {', '.join(STEP_KINDS)}; got {kinds or 'none'}")
    common = _common(raw)
    if "prompt" in raw:
        vars_ = raw.get("vars")
        return PromptStep(
            prompt=str(raw["prompt"]),
            model=raw.get("model"),
            adapter=raw.get("adapter"),
            params=dict(raw["params"]) if raw.get("params") is not None else None,
            vars=dict(vars_) if vars_ is not None else None,
            **common,
        )
    if "retrieve" in raw:
        top_k = raw.get("top_k")
        return RetrieveStep(
            retrieve=str(raw["retrieve"]),
            query=str(raw.get("query", DEFAULT_QUERY)),
            top_k=int(top_k) if top_k is not None else None,
            **common,
        )
    if "transform" in raw:
        return TransformStep(
            transform=str(raw["transform"]),
            input=raw.get("input"),
            template=raw.get("template"),
            pattern=raw.get("pattern"),
            group=raw.get("group", 0),
            **common,
        )
    return CallStep(call=str(raw["call"]), args=dict(raw.get("args") or {}), **common)


def parse_chain(name: str, raw: Mapping[str, Any]) -> ChainSpec:
    return ChainSpec(
        name=name,
        steps=tuple(parse_step(s) for s in raw.get("steps") or ()),
        inputs=tuple(str(i) for i in raw.get("inputs") or ()),
        output=raw.get("output") or None,
        description=str(raw.get("description") or ""),
    )


def parse_chains(section: Mapping[str, Any] | None) -> dict[str, ChainSpec]:
    """The ``chains:`` section (None when absent)."""
    return {name: parse_chain(name, raw) for name, raw in (section or {}).items()}
