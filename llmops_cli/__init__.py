"""llmops: take an LLM application from prompt to production, with every artifact versioned in git.

The package is importable as a library: the core modules (``config``, ``versioning``, ``models``,
``scaffold``) never import typer or rich, and heavy libraries (torch, transformers, chromadb) are
imported only inside the functions that need them.
"""

__version__ = "0.1.0"
