"""The SQLite backend of the monitor store: one file in WAL mode (the default, for one server).

WAL lets ``llmops monitor`` read while the server writes, and a busy timeout makes two writing
processes wait for each other instead of failing. The queue, writer thread and retries are
:class:`~llmops_cli.monitor.store.MonitorStore`'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from llmops_cli.monitor.records import COLUMNS, StoreError
from llmops_cli.monitor.store import BUSY_TIMEOUT_MS, SCHEMA_VERSION, MonitorStore

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
_INSERT = f"INSERT OR REPLACE INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class SQLiteStore(MonitorStore):
    """A monitor store in one SQLite file (created with its folder if needed)."""

    kind = "sqlite"
    # sqlite3 reports data it cannot bind (a str with lone surrogates, a too large int) as these.
    _ROW_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (
        *MonitorStore._ROW_ERRORS, sqlite3.InterfaceError, sqlite3.IntegrityError, sqlite3.DataError,
    )  # fmt: skip

    def __init__(self, location: Path | str) -> None:
        self.path = Path(location)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"Cannot create the folder of the monitor store {self.path}: {error}") from error
        super().__init__(self.path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a power cut may lose the last transactions, never corrupt the file; fine for logs.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
            conn.executescript(_SCHEMA)
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            # Stores written before ``meta`` existed get it added (readers of the plain columns don't care).
            columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
            if "meta" not in columns:
                conn.execute("ALTER TABLE requests ADD COLUMN meta TEXT")
        except sqlite3.Error as error:
            raise StoreError(f"Cannot open the monitor store {self.path}: {error}") from error
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        return self._connect()

    @property
    def journal_mode(self) -> str:
        return str(self._scalar("PRAGMA journal_mode"))

    def _insert(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlock upgrading a read later
        try:
            conn.executemany(_INSERT, rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert_feedback(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> int:
        cursor = conn.execute(
            "INSERT INTO feedback (request_id, ts, score, label, comment) VALUES (?, ?, ?, ?, ?)", row
        )
        return int(cursor.lastrowid or 0)

    def _probe(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # the write lock, and a real (empty) write of the header
        try:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _query(self, conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> Iterator[Mapping[str, Any]]:
        for row in conn.execute(sql, tuple(args)):
            yield {key: row[key] for key in row.keys()}  # noqa: SIM118  (sqlite3.Row is not a Mapping)
