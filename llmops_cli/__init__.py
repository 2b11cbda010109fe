"""llmops: take an LLM application from prompt to production, with every artifact versioned in git.

The package is importable as a library: the core modules (``config``, ``versioning``, ``models``,
``scaffold``) never import typer or rich, and heavy libraries (torch, transformers, chromadb) are
imported only inside the functions that need them.

The Python API is :class:`Project` (``from llmops_cli import Project``), loaded on first use so
``import llmops_cli`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Project", "__version__"]

if TYPE_CHECKING:
    from llmops_cli.project import Project


def __getattr__(name: str) -> Any:
    if name == "Project":
        from llmops_cli.project import Project

        return Project
    raise AttributeError(f"module 'llmops_cli' has no attribute {name!r}")
