"""Files shipped with llmops: the JSON Schemas and the ``init`` templates.

In a wheel they are package data under ``llmops_cli/_data/``; in a source checkout (editable
install, tests) they are the repository's top-level ``schemas/`` and ``templates/``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"llmops installation is missing its '{name}' directory")


def schemas_dir() -> Path:
    return _data_dir("schemas")


def templates_dir() -> Path:
    return _data_dir("templates")


@cache
def load_schema(name: str = "llmops") -> dict[str, Any]:
    """``llmops`` -> schemas/llmops.schema.json, ``prompt`` -> schemas/prompt.schema.json."""
    return json.loads((schemas_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))
