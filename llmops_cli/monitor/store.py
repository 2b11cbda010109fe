"""The monitor store: every served request (and its feedback) in one SQLite file, WAL mode.

The server calls :meth:`MonitorStore.log_request` on its hot path, so that call only puts the
record on a queue; one background writer thread drains the queue and inserts what it found in a
single transaction (hundreds of rows per commit instead of one fsync each). ``llmops monitor``
and tests read with :meth:`requests_between`, :meth:`count` and friends, from any thread or
process: WAL lets readers run while the writer writes, and a busy timeout makes two writing
processes wait for each other instead of failing.

Tables (the contract with ``llmops monitor``; ``meta`` is an extra JSON column for details such as
the chat messages, decoding params, finish reason or a chain's steps):

* ``requests(id TEXT PRIMARY KEY, ts REAL, endpoint TEXT, model TEXT, adapter TEXT, prompt TEXT,
  package TEXT, git_sha TEXT, input TEXT, output TEXT, latency_ms REAL, prompt_tokens INT,
  completion_tokens INT, status INT, error TEXT, meta TEXT)``
* ``feedback(id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT, ts REAL, score REAL,
  label TEXT, comment TEXT)``

``ts`` is Unix time in seconds (UTC). Versions are written ``NAME@VERSION`` (``support-lora@v3``,
``base@sha256:1a2b3c4d5e6f``), the version part left out when unknown.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.paths import STATE_DIR

DEFAULT_STORE = f"{STATE_DIR}/monitor.db"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
_MAX_QUEUE = 100_000  # a writer that falls this far behind slows callers down instead of eating memory
_MAX_BATCH = 2_000  # rows per transaction
_LINGER_S = 0.05  # how long the writer waits to gather more rows once it has some

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    endpoint TEXT NOT NULL DEFAULT '',
    model TEXT,
    adapter TEXT,
    prompt TEXT,
    package TEXT,
    git_sha TEXT,
    input TEXT,
    output TEXT,
    latency_ms REAL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL,
    error TEXT,
    meta TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    score REAL,
    label TEXT,
    comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback(request_id);
CREATE INDEX IF NOT EXISTS feedback_ts ON feedback(ts);
"""

_COLUMNS = (
    "id", "ts", "endpoint", "model", "adapter", "prompt", "package", "git_sha", "input", "output",
    "latency_ms", "prompt_tokens", "completion_tokens", "status", "error", "meta",
)  # fmt: skip
_INSERT = f"INSERT OR REPLACE INTO requests ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


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
        return tuple(meta if c == "meta" else getattr(self, c) for c in _COLUMNS)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RequestRecord:
        values = {c: row[c] for c in _COLUMNS}
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


class MonitorStore:
    """Thread-safe access to one monitor database; writes are batched by a background thread.

    Call :meth:`flush` to wait until everything logged so far is on disk, and :meth:`close` (or use
    the store as a context manager) when done; ``close`` flushes first.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[RequestRecord | _Flush | None] = queue.Queue(maxsize=_MAX_QUEUE)
        self._write_lock = threading.Lock()  # one writing connection, shared by the writer thread and feedback
        self._writer_conn = self._connect()
        self._writer_conn.executescript(_SCHEMA)
        if self._writer_conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            self._writer_conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._ensure_meta_column()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []  # one per reading thread, all closed by close()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._closed = False
        self.write_errors = 0  # rows lost to a failing disk; the server reports it, never raises on it

    # --- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a power cut may lose the last transactions, never corrupt the file; fine for logs.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError(f"monitor store {self.path} is closed")
            conn = self._connect()
            self._local.conn = conn
            with self._thread_lock:
                self._readers.append(conn)
        return conn

    def _ensure_meta_column(self) -> None:
        """Stores written before ``meta`` existed get it added (readers of the plain columns don't care)."""
        columns = {row[1] for row in self._writer_conn.execute("PRAGMA table_info(requests)")}
        if "meta" not in columns:
            self._writer_conn.execute("ALTER TABLE requests ADD COLUMN meta TEXT")

    @property
    def journal_mode(self) -> str:
        return str(self._reader().execute("PRAGMA journal_mode").fetchone()[0])

    # --- writing -------------------------------------------------------------------------------

    def log_request(self, record: RequestRecord) -> None:
        """Queue ``record`` for the writer thread (returns at once unless the writer is far behind)."""
        if self._closed:
            raise RuntimeError(f"monitor store {self.path} is closed")
        self._start_writer()
        self._queue.put(record)

    def log_many(self, records: Iterable[RequestRecord]) -> int:
        """Insert ``records`` now, in transactions of a few thousand rows; returns how many."""
        total = 0
        batch: list[tuple[Any, ...]] = []
        for record in records:
            batch.append(record.row())
            if len(batch) >= _MAX_BATCH:
                total += self._insert(batch)
                batch = []
        if batch:
            total += self._insert(batch)
        return total

    def add_feedback(
        self, request_id: str, *, score: float | None = None, label: str | None = None, comment: str | None = None
    ) -> int:
        """Record feedback on a request; returns the feedback row's id."""
        with self._write_lock, self._transaction(self._writer_conn) as conn:
            cursor = conn.execute(
                "INSERT INTO feedback (request_id, ts, score, label, comment) VALUES (?, ?, ?, ?, ?)",
                (request_id, time.time(), score, label, comment),
            )
            return int(cursor.lastrowid or 0)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every record logged before this call is written; False on timeout."""
        if self._thread is None or self._closed:
            return True  # nothing was queued, or close() already wrote it all
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer and close the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        with self._write_lock:
            self._writer_conn.close()
        with self._thread_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()

    def __enter__(self) -> MonitorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    @contextlib.contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlock upgrading a read later
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        with self._write_lock, self._transaction(self._writer_conn) as conn:
            conn.executemany(_INSERT, rows)
        return len(rows)

    def _start_writer(self) -> None:
        if self._thread is not None:
            return
        with self._thread_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._write_loop, name="monitor-store-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch, markers, stop = self._gather(item)
            if batch:
                try:
                    self._insert([record.row() for record in batch])
                except sqlite3.Error:
                    # A full or read-only disk must not take the server down; count what was lost.
                    self.write_errors += len(batch)
            for marker in markers:
                marker.done.set()
            if stop:
                return

    def _gather(self, first: RequestRecord | _Flush | None) -> tuple[list[RequestRecord], list[_Flush], bool]:
        """``first`` plus whatever arrives within the linger time, up to one transaction's worth."""
        batch: list[RequestRecord] = []
        markers: list[_Flush] = []
        item: RequestRecord | _Flush | None = first
        deadline = time.monotonic() + _LINGER_S
        while True:
            if item is None:
                return batch, markers, True
            if isinstance(item, _Flush):
                markers.append(item)
                return batch, markers, False  # a flush writes now rather than lingering
            batch.append(item)
            if len(batch) >= _MAX_BATCH:
                return batch, markers, False
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return batch, markers, False

    # --- reading -------------------------------------------------------------------------------

    def count(self, *, endpoint: str | None = None) -> int:
        """Number of logged requests (written ones: call :meth:`flush` first to include queued ones)."""
        if endpoint is None:
            row = self._reader().execute("SELECT COUNT(*) FROM requests").fetchone()
        else:
            row = self._reader().execute("SELECT COUNT(*) FROM requests WHERE endpoint = ?", (endpoint,)).fetchone()
        return int(row[0])

    def get(self, request_id: str) -> RequestRecord | None:
        row = self._reader().execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        return None if row is None else RequestRecord.from_row(row)

    def has_request(self, request_id: str) -> bool:
        row = self._reader().execute("SELECT 1 FROM requests WHERE id = ?", (request_id,)).fetchone()
        return row is not None

    def requests_between(
        self, t0: float | None = None, t1: float | None = None, *, endpoint: str | None = None
    ) -> list[RequestRecord]:
        """Requests with ``t0 <= ts < t1`` (either bound may be None), oldest first."""
        return list(self.iter_requests(t0, t1, endpoint=endpoint))

    def iter_requests(
        self, t0: float | None = None, t1: float | None = None, *, endpoint: str | None = None
    ) -> Iterator[RequestRecord]:
        """Like :meth:`requests_between` without holding every row in memory."""
        clauses, args = _time_clauses(t0, t1)
        if endpoint is not None:
            clauses.append("endpoint = ?")
            args.append(endpoint)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        for row in self._reader().execute(f"SELECT * FROM requests {where} ORDER BY ts, id", args):
            yield RequestRecord.from_row(row)

    def feedback_between(self, t0: float | None = None, t1: float | None = None) -> list[FeedbackRecord]:
        clauses, args = _time_clauses(t0, t1)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._reader().execute(f"SELECT * FROM feedback {where} ORDER BY ts, id", args)
        return [FeedbackRecord(**dict(row)) for row in rows]

    def feedback_for(self, request_id: str) -> list[FeedbackRecord]:
        rows = self._reader().execute("SELECT * FROM feedback WHERE request_id = ? ORDER BY id", (request_id,))
        return [FeedbackRecord(**dict(row)) for row in rows]


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


def _time_clauses(t0: float | None, t1: float | None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if t0 is not None:
        clauses.append("ts >= ?")
        args.append(t0)
    if t1 is not None:
        clauses.append("ts < ?")
        args.append(t1)
    return clauses, args


def store_path(config: Any) -> Path:
    """Where a project's monitor store lives: ``monitor.store`` (default ``.llmops/monitor.db``)."""
    return Path(config.resolve_path(str((config.monitor or {}).get("store") or DEFAULT_STORE)))


def open_store(config: Any, path: Path | None = None) -> MonitorStore:
    """The project's monitor store (or the one at ``path``), created if needed.

    A store inside the project's ``.llmops/`` gets that folder's self-ignoring ``.gitignore``, so
    the database never shows up as untracked work in git.
    """
    target = Path(path) if path is not None else store_path(config)
    state = Path(config.root) / STATE_DIR
    if target.resolve().is_relative_to(state.resolve()):
        state.mkdir(parents=True, exist_ok=True)
        ignore = state / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# llmops state: content store, caches, indexes\n*\n")
    return MonitorStore(target)
