"""What the monitor store holds: one row per served request, and feedback on requests.

Tables (the contract with ``llmops monitor``; ``meta`` is an extra JSON column for details such as
the chat messages, decoding params, finish reason or a chain's steps):

* ``requests(id TEXT PRIMARY KEY, ts REAL, endpoint TEXT, model TEXT, adapter TEXT, prompt TEXT,
  package TEXT, git_sha TEXT, input TEXT, output TEXT, latency_ms REAL, prompt_tokens INT,
  completion_tokens INT, status INT, error TEXT, meta TEXT)`` (PostgreSQL adds ``seq``, an
  identity column that plays SQLite's ``rowid``)
* ``feedback(id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT, ts REAL, score REAL,
  label TEXT, comment TEXT)``

``ts`` is Unix time in seconds (UTC). Versions are written ``NAME@VERSION`` (``support-lora@v3``,
``base@sha256:1a2b3c4d5e6f``), the version part left out when unknown. A request logged twice
with the same id keeps the last version (an upsert), on both backends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.errors import UnavailableError

COLUMNS = (
    "id", "ts", "endpoint", "model", "adapter", "prompt", "package", "git_sha", "input", "output",
    "latency_ms", "prompt_tokens", "completion_tokens", "status", "error", "meta",
)  # fmt: skip
_INT64 = 2**63 - 1


class StoreError(UnavailableError):
    """The monitor store cannot be opened, read or written (server down, bad URL, disk full)."""


@dataclass
class RequestRecord:
    """One served request as the monitor sees it. ``meta`` is stored as JSON."""

    id: str
    ts: float
    endpoint: str
    status: int
    model: str | None = None
    adapter: str | None = None
    prompt: str | None = None
    package: str | None = None
    git_sha: str | None = None
    input: str | None = None
    output: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self) -> tuple[Any, ...]:
        meta = json.dumps(self.meta, ensure_ascii=False, default=str) if self.meta else None
        return tuple(meta if c == "meta" else getattr(self, c) for c in COLUMNS)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RequestRecord:
        values = {c: row[c] for c in COLUMNS}
        values["meta"] = json.loads(values["meta"]) if values["meta"] else {}
        return cls(**values)


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    request_id: str
    ts: float
    score: float | None
    label: str | None
    comment: str | None


def writable_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """``row`` with every value a database accepts: text that UTF-8 cannot encode (lone surrogates)
    gets U+FFFD in their place, NUL characters (refused by PostgreSQL) too, and integers beyond
    64 bits are clamped."""
    out: list[Any] = []
    for value in row:
        if isinstance(value, str):
            value = _replace_surrogates(value).replace("\x00", "\ufffd")
        elif isinstance(value, int) and not isinstance(value, bool):
            value = max(-_INT64, min(_INT64, value))
        out.append(value)
    return tuple(out)


def _replace_surrogates(text: str) -> str:
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text) if _has_surrogate(text) else text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
