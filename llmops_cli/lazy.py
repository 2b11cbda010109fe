"""Package facades that import a submodule only when one of its names is used (PEP 562).

``from llmops_cli.package import build_package`` should not import unpacking, verification and
preparation too: every ``llmops`` command pays for each module it imports (a re-run that decides
in half a second spends most of it importing). A package ``__init__`` lists its public names under
``TYPE_CHECKING`` (for type checkers and readers) and hands the same table to :func:`exports`,
as huggingface_hub's ``_attach`` does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, table: Mapping[str, tuple[str, ...]]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose ``table`` maps a submodule (absolute, or
    relative to the package with a leading '.') to the public names it provides."""
    where = {name: module for module, names in table.items() for name in names}
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
