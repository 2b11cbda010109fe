"""A persistent cache of model outputs so re-running an eval only generates what changed.

One SQLite file, ``<project>/.llmops/cache/eval.sqlite``, in WAL mode: readers never block the
writer, several ``llmops eval`` processes can share it (a busy timeout makes them wait for each
other instead of failing), and every write is one transaction, so a crash leaves either the old
rows or the new ones, never a torn file.

The key is a sha256 over everything that decides the output: the model fingerprint, the adapter
version, the exact rendered prompt (text or chat messages), the generation parameters and the
sample index (so ``samples: 5`` at temperature > 0 caches five distinct outputs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.generation import GenerationParams, GenerationResult
from llmops_cli.paths import STATE_DIR

CACHE_RELPATH = Path(STATE_DIR) / "cache" / "eval.sqlite"
KEY_VERSION = 1  # bump when the key recipe changes, so old rows simply stop matching
BUSY_TIMEOUT_MS = 30_000
_CHUNK = 500  # stay under SQLite's host-parameter limit (999 on old builds)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    finish_reason TEXT NOT NULL DEFAULT 'stop',
    model TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
)
"""


# A case's whole latency as first measured (a chain's retrieval and generation together), keyed by
# the case's target and its generations' keys, so a fully cached re-run reports what that run saw.
_CASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS case_latency (
    key TEXT PRIMARY KEY,
    latency_ms REAL NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CachedOutput:
    """One stored generation. ``latency_ms`` is the latency measured when it was first generated."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    created: float
    finish_reason: str = "stop"
    model: str = ""

    def to_generation_result(self) -> GenerationResult:
        return GenerationResult(
            text=self.text,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            latency_ms=self.latency_ms,
            finish_reason=self.finish_reason,
            model=self.model,
        )


def cache_key(
    model_fingerprint: str,
    adapter: str | None,
    prompt: str | Sequence[Mapping[str, str]],
    params: GenerationParams | Mapping[str, Any] | None,
    sample: int = 0,
) -> str:
    """sha256 hex over (fingerprint, adapter, prompt, params, sample) in a canonical JSON form."""
    if isinstance(params, GenerationParams):
        params_dict: Mapping[str, Any] = params.as_dict()
    else:
        params_dict = dict(params or {})
    payload = {
        "v": KEY_VERSION,
        "model": model_fingerprint,
        "adapter": adapter or "",
        # A plain string and a one-message chat are different inputs to a chat template.
        "prompt": prompt if isinstance(prompt, str) else [dict(m) for m in prompt],
        "params": params_dict,
        "sample": int(sample),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class OutputCache:
    """The eval output cache of one project (``OutputCache(project_root)``).

    ``path`` overrides the file location (tests, a shared CI cache). Use as a context manager or
    call :meth:`close`. Thread-safe: eval workers share one connection behind a lock.
    """

    def __init__(self, root: Path | str, *, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else Path(root) / CACHE_RELPATH
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self._lock = threading.RLock()
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves so each batch is exactly one transaction.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable against application crashes in WAL mode; only an OS crash may lose
        # the last commits, which for a cache just means regenerating them.
        conn.execute("PRAGMA synchronous = NORMAL")
        with _transaction(conn):
            conn.execute(_SCHEMA)
            conn.execute(_CASE_SCHEMA)
        return conn

    # -- keys ---------------------------------------------------------------------------------
    @staticmethod
    def key(
        model_fingerprint: str,
        adapter: str | None,
        prompt: str | Sequence[Mapping[str, str]],
        params: GenerationParams | Mapping[str, Any] | None,
        sample: int = 0,
    ) -> str:
        """See :func:`cache_key`."""
        return cache_key(model_fingerprint, adapter, prompt, params, sample)

    # -- reads --------------------------------------------------------------------------------
    def get(self, key: str) -> CachedOutput | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedOutput]:
        """The cached outputs among ``keys`` (missing keys are absent from the result)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, CachedOutput] = {}
        with self._lock:
            self._select(wanted, found)
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def _select(self, wanted: list[str], found: dict[str, CachedOutput]) -> None:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT key, text, prompt_tokens, completion_tokens, latency_ms, created, finish_reason, model"
                f" FROM outputs WHERE key IN ({marks})",
                chunk,
            )
            for row in rows:
                found[row[0]] = CachedOutput(*row[1:])

    # -- writes -------------------------------------------------------------------------------
    def put(self, key: str, result: GenerationResult | CachedOutput) -> None:
        self.put_many([(key, result)])

    def put_many(self, items: Iterable[tuple[str, GenerationResult | CachedOutput]]) -> int:
        """Store all ``items`` in one transaction (all or nothing); returns how many were written."""
        now = time.time()
        rows = [_row(key, result, now) for key, result in items]
        if not rows:
            return 0
        with self._lock, _transaction(self._conn):
            self._conn.executemany(
                "INSERT OR REPLACE INTO outputs"
                " (key, text, prompt_tokens, completion_tokens, latency_ms, finish_reason, model, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    # -- whole cases ----------------------------------------------------------------------------
    @staticmethod
    def case_key(target: Mapping[str, Any], generation_keys: Sequence[str]) -> str:
        """The key of one case run: its target and the keys of the generations it made, in order."""
        blob = json.dumps({"v": KEY_VERSION, "target": target, "gen": list(generation_keys)}, sort_keys=True)
        return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def case_latency(self, key: str) -> float | None:
        """The latency first measured for the case run ``key``, if it was ever stored."""
        with self._lock:
            row = self._conn.execute("SELECT latency_ms FROM case_latency WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else None

    def put_case_latency(self, key: str, latency_ms: float) -> None:
        with self._lock, _transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO case_latency (key, latency_ms, created) VALUES (?, ?, ?)",
                (key, float(latency_ms), time.time()),
            )

    def clear(self) -> int:
        """Delete every cached output; returns how many there were."""
        with _transaction(self._conn):
            count = int(self._conn.execute("SELECT COUNT(*) FROM outputs").fetchone()[0])
            self._conn.execute("DELETE FROM outputs")
            self._conn.execute("DELETE FROM case_latency")
        # Give the space back; VACUUM cannot run inside a transaction and may be blocked by readers.
        with contextlib.suppress(sqlite3.OperationalError):
            self._conn.execute("VACUUM")
        return count

    def stats(self) -> dict[str, Any]:
        """Entries, size on disk, oldest/newest entry and this instance's hit/miss counts."""
        entries, oldest, newest = self._conn.execute(
            "SELECT COUNT(*), MIN(created), MAX(created) FROM outputs"
        ).fetchone()
        size = sum(p.stat().st_size for p in self._files() if p.exists())
        return {
            "path": str(self.path),
            "entries": int(entries),
            "bytes": size,
            "oldest": oldest,
            "newest": newest,
            "hits": self.hits,
            "misses": self.misses,
        }

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> OutputCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _files(self) -> list[Path]:
        return [self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")]


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error).

    IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout instead of
    one failing with "database is locked" when it upgrades a read lock mid-transaction.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _row(key: str, result: GenerationResult | CachedOutput, now: float) -> tuple[Any, ...]:
    created = result.created if isinstance(result, CachedOutput) else now
    return (
        key,
        result.text,
        int(result.prompt_tokens),
        int(result.completion_tokens),
        float(result.latency_ms),
        result.finish_reason,
        result.model,
        created,
    )
