"""Prompts as code: typed prompt files, sandboxed rendering, dependents, and ``prompt diff``.

Importing this package is cheap (no torch, transformers or chromadb; Jinja and jsonschema load on
first use), so listing, rendering and diffing prompts stay fast.
"""

from typing import TYPE_CHECKING

from llmops_cli.lazy import exports

# Imported now, not lazily: importing the submodule prompts.render would otherwise bind the package
# attribute `render` to the module, and `from llmops_cli.prompts import render` would get it.
from llmops_cli.prompts.render import render

if TYPE_CHECKING:
    from llmops_cli.prompts.deps import Dependents, StepUse, find_dependents
    from llmops_cli.prompts.diff import Breaking, DiffReport, PromptChange, compare, prompt_diff
    from llmops_cli.prompts.render import template_variables, to_prompt_text
    from llmops_cli.prompts.spec import (
        PromptSpec,
        VariableSpec,
        load_prompt,
        parse_examples,
        parse_prompt,
        parse_prompt_text,
    )
    from llmops_cli.prompts.variables import coerce, prepare_variables

__all__ = [
    "Breaking",
    "Dependents",
    "DiffReport",
    "PromptChange",
    "PromptSpec",
    "StepUse",
    "VariableSpec",
    "coerce",
    "compare",
    "find_dependents",
    "load_prompt",
    "parse_examples",
    "parse_prompt",
    "parse_prompt_text",
    "prepare_variables",
    "prompt_diff",
    "render",
    "template_variables",
    "to_prompt_text",
]

# Each submodule loads when one of its names is first used (llmops_cli.lazy).
__getattr__, __dir__ = exports(
    __name__,
    {
        "llmops_cli.prompts.deps": ("Dependents", "StepUse", "find_dependents"),
        "llmops_cli.prompts.diff": ("Breaking", "DiffReport", "PromptChange", "compare", "prompt_diff"),
        "llmops_cli.prompts.render": ("template_variables", "to_prompt_text"),
        "llmops_cli.prompts.spec": (
            "PromptSpec",
            "VariableSpec",
            "load_prompt",
            "parse_examples",
            "parse_prompt",
            "parse_prompt_text",
        ),
        "llmops_cli.prompts.variables": ("coerce", "prepare_variables"),
    },
)
