"""The monitor store: every served request (and its feedback), in SQLite or PostgreSQL.

``monitor.store`` in llmops.yaml (or ``LLMOPS_MONITOR_STORE``, which wins; ``llmops serve
--store`` wins over both) names the store: a file path gives one SQLite file in WAL mode (the
default ``.llmops/monitor.db``, fine for one server process), a ``postgresql://`` URL gives a
shared store on a PostgreSQL server (what several replicas need, so ``llmops monitor`` sees all of
production). :class:`MonitorStore` is the one interface; ``MonitorStore(location)`` opens the
right backend (:mod:`~llmops_cli.monitor.store_sqlite`, :mod:`~llmops_cli.monitor.store_postgres`).

The server calls :meth:`MonitorStore.log_request` on its hot path, so that call only puts the
record on a bounded queue (a full queue drops the row, counts it in ``write_errors`` and logs it:
the event loop never waits on the database). One background writer thread drains the queue and
inserts what it found in one transaction (hundreds of rows per commit). The writer never dies: a
batch that fails is retried a few times with backoff (the connection reopened), a batch the
database refuses because of a row is written row by row, a row that still fails is made writable
(text that cannot be encoded is re-encoded with replacement characters) or counted in
``write_errors`` and logged to the ``llmops.serve`` logger. :attr:`MonitorStore.healthy` is False
while the last write failed (database down, disk full); the server's ``/ready`` then answers 503
with :attr:`MonitorStore.last_error`, and the writer keeps probing until the store works again.

The tables and their rows are described in :mod:`llmops_cli.monitor.records`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from llmops_cli.monitor.locations import is_postgres_url, mask_url, store_location, url_password
from llmops_cli.monitor.queries import StoreQueries
from llmops_cli.monitor.records import RequestRecord, StoreError, writable_row
from llmops_cli.paths import STATE_DIR

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
_MAX_QUEUE = 100_000  # rows waiting for the writer; beyond that log_request drops (and counts) rather than block
_MAX_BATCH = 2_000  # rows per transaction
_LINGER_S = 0.05  # how long the writer waits to gather more rows once it has some
_RETRIES = 4  # attempts at a batch before its rows are counted lost
_BACKOFF_S = 0.2  # first wait between attempts, doubled each time (0.2 + 0.4 + 0.8 s)
_PROBE_S = 1.0  # while unhealthy and idle, the writer tries the store this often
_LOCK_TIMEOUT_S = 10.0  # add_feedback / log_many wait at most this long for the writing connection
_DROP_LOG_S = 10.0  # at most one "queue full" log line per this many seconds

log = logging.getLogger("llmops.serve")


class MonitorStore(StoreQueries):
    """Thread-safe access to one monitor store; writes are batched by a background thread.

    ``MonitorStore(location)`` opens a SQLite file (a path) or a PostgreSQL database (a
    ``postgresql://`` URL). Call :meth:`flush` to wait until everything logged so far is written,
    and :meth:`close` (or use the store as a context manager) when done; ``close`` flushes first.
    Backends implement the ``_connect_writer``/``_insert``/``_query`` hooks; the queue, the writer
    thread, retries and health are shared here.
    """

    kind: ClassVar[str] = ""
    _ROW_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (UnicodeError, ValueError, TypeError, OverflowError)

    def __new__(cls, location: Path | str, *args: Any, **kwargs: Any) -> MonitorStore:
        if cls is MonitorStore:
            if is_postgres_url(location):
                from llmops_cli.monitor.store_postgres import PostgresStore

                cls = PostgresStore
            else:
                from llmops_cli.monitor.store_sqlite import SQLiteStore

                cls = SQLiteStore
        return super().__new__(cls)

    def __init__(self, location: Path | str) -> None:
        self.location = str(location)
        self.display = mask_url(self.location)  # what messages show: never a password
        self._queue: queue.Queue[RequestRecord | _Flush | None] = queue.Queue(maxsize=_MAX_QUEUE)
        self._write_lock = threading.Lock()  # one writing connection: writer thread, feedback, log_many
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[Any] = []  # one per reading thread, all closed by close()
        self._closed = False
        self._closing = False
        self._last_drop_log = 0.0
        self.write_errors = 0  # rows lost; the server exports it as llmops_monitor_write_errors_total
        self.last_error: str | None = None  # why the last write failed; None once one succeeds again
        self._writer_conn: Any = None
        with self._write_lock:
            self._writer_conn = self._connect_writer()  # fails fast (StoreError) on a bad location

    # --- backend hooks -------------------------------------------------------------------------

    def _connect_writer(self) -> Any:
        """A writing connection with the schema in place."""
        raise NotImplementedError

    def _connect_reader(self) -> Any:
        raise NotImplementedError

    def _insert(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        """Upsert ``rows`` (tuples in :data:`COLUMNS` order) in one transaction."""
        raise NotImplementedError

    def _insert_feedback(self, conn: Any, row: tuple[Any, ...]) -> int:
        raise NotImplementedError

    def _probe(self, conn: Any) -> None:
        """Raise unless the store can be written now."""
        raise NotImplementedError

    def _query(self, conn: Any, sql: str, args: Sequence[Any] = ()) -> Iterator[Mapping[str, Any]]:
        """Rows of a read (``?`` placeholders) as mappings, streamed."""
        raise NotImplementedError

    def _close_conn(self, conn: Any) -> None:
        conn.close()

    # --- health --------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """False while the last write attempt failed (the store is down or unwritable)."""
        return self.last_error is None

    def _ok(self) -> None:
        if self.last_error is not None:
            log.warning("monitor store %s: writing again", self.display)
        self.last_error = None

    def _failed(self, error: BaseException) -> None:
        text = self._scrub(f"{type(error).__name__}: {error}".strip())
        if text != self.last_error:
            log.error("monitor store %s: write failed: %s", self.display, text)
        self.last_error = text

    def _scrub(self, text: str) -> str:
        """``text`` without the store's password (driver messages may quote the connection string)."""
        if self.location != self.display:
            text = text.replace(self.location, self.display)
            secret = url_password(self.location)
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- writing -------------------------------------------------------------------------------

    def log_request(self, record: RequestRecord) -> None:
        """Queue ``record`` for the writer thread; never blocks (a full queue drops and counts the row)."""
        if self._closed:
            raise RuntimeError(f"monitor store {self.display} is closed")
        self._start_writer()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.write_errors += 1
            now = time.monotonic()
            if now - self._last_drop_log >= _DROP_LOG_S:
                self._last_drop_log = now
                log.error(
                    "monitor store %s: %d rows waiting to be written; dropped request %s (%d rows lost so far)",
                    self.display, self._queue.qsize(), record.id, self.write_errors,
                )  # fmt: skip

    def log_many(self, records: Iterable[RequestRecord]) -> int:
        """Insert ``records`` now, in transactions of a few thousand rows; returns how many."""
        total = 0
        batch: list[tuple[Any, ...]] = []
        for record in records:
            batch.append(record.row())
            if len(batch) >= _MAX_BATCH:
                total += self._insert_now(batch)
                batch = []
        if batch:
            total += self._insert_now(batch)
        return total

    def add_feedback(
        self, request_id: str, *, score: float | None = None, label: str | None = None, comment: str | None = None
    ) -> int:
        """Record feedback on a request; returns the feedback row's id (:class:`StoreError` when it cannot)."""
        row = writable_row((request_id, time.time(), score, label, comment))
        return int(self._with_writer(lambda conn: self._insert_feedback(conn, row), "record feedback"))

    def _insert_now(self, rows: list[tuple[Any, ...]]) -> int:
        self._with_writer(lambda conn: self._insert(conn, rows), "write requests")
        return len(rows)

    def _with_writer(self, work: Any, what: str) -> Any:
        """Run ``work(conn)`` on the writing connection, reopened if needed; StoreError on failure."""
        if self._closed:
            raise RuntimeError(f"monitor store {self.display} is closed")
        if not self._write_lock.acquire(timeout=_LOCK_TIMEOUT_S):
            raise StoreError(
                f"Could not {what}: the monitor store {self.display} is busy ({self.last_error or 'slow'})."
            )
        try:
            try:
                if self._writer_conn is None:
                    self._writer_conn = self._connect_writer()
                result = work(self._writer_conn)
            except StoreError as error:
                self._failed(error)
                raise
            except Exception as error:
                self._failed(error)
                self._reset_writer()
                raise StoreError(
                    f"Could not {what} in the monitor store {self.display}: {self._scrub(str(error))}"
                ) from error
        finally:
            self._write_lock.release()
        self._ok()
        return result

    def _reset_writer(self) -> None:
        """Drop the writing connection (caller holds the lock); the next write reopens it."""
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close; it is dropped anyway
                self._close_conn(conn)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every record logged before this call is written (or given up); False on timeout."""
        if self._thread is None or self._closed:
            return True  # nothing was queued, or close() already wrote it all
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer and close the connections. Idempotent."""
        if self._closed:
            return
        self._closing = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self._closed = True
        with self._write_lock:
            self._reset_writer()
        with self._thread_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            with contextlib.suppress(Exception):
                self._close_conn(reader)

    def __enter__(self) -> MonitorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_writer(self) -> None:
        if self._thread is not None:
            return
        with self._thread_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._write_loop, name="monitor-store-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _write_loop(self) -> None:
        """Drain the queue until close(); nothing that goes wrong in here stops the loop."""
        while True:
            markers: list[_Flush] = []
            stop = False
            try:
                try:
                    item = self._queue.get(timeout=None if self.healthy else _PROBE_S)
                except queue.Empty:
                    self._probe_store()
                    continue
                batch, markers, stop = self._gather(item)
                if batch:
                    self._write_batch(batch)
            except Exception as error:  # a bug in here must not silently stop the logging
                log.exception("monitor store %s: writer error", self.display)
                self._failed(error)
            finally:
                for marker in markers:
                    marker.done.set()
            if stop:
                return

    def _probe_store(self) -> None:
        with self._write_lock:
            try:
                if self._writer_conn is None:
                    self._writer_conn = self._connect_writer()
                self._probe(self._writer_conn)
            except Exception as error:
                self._failed(error)
                self._reset_writer()
                return
        self._ok()

    def _write_batch(self, records: list[RequestRecord]) -> None:
        rows = [record.row() for record in records]
        attempts = 1 if self._closing and not self.healthy else _RETRIES
        error: BaseException | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(_BACKOFF_S * 2 ** (attempt - 1))
            with self._write_lock:
                try:
                    if self._writer_conn is None:
                        self._writer_conn = self._connect_writer()
                    self._insert(self._writer_conn, rows)
                except Exception as failure:
                    error = failure
                    if self._is_row_error(failure):
                        break
                    self._failed(failure)
                    self._reset_writer()
                    continue
            self._ok()
            return
        if error is not None and self._is_row_error(error):
            self._write_rows_singly(records, rows)
            return
        self._lost(records, error)

    def _write_rows_singly(self, records: list[RequestRecord], rows: list[tuple[Any, ...]]) -> None:
        """One bad row never loses the others: each row alone, a refused one made writable, else counted."""
        for record, row in zip(records, rows, strict=True):
            with self._write_lock:
                try:
                    if self._writer_conn is None:
                        self._writer_conn = self._connect_writer()
                    try:
                        self._insert(self._writer_conn, [row])
                        continue
                    except Exception as error:
                        if not self._is_row_error(error):
                            raise
                        log.warning(
                            "monitor store %s: request %s could not be written as is (%s: %s); writing it with "
                            "replacement characters", self.display, record.id, type(error).__name__, error,
                        )  # fmt: skip
                    self._insert(self._writer_conn, [writable_row(row)])
                except Exception as error:
                    self._lost([record], error)
                    if not self._is_row_error(error):
                        self._failed(error)
                        self._reset_writer()

    def _lost(self, records: list[RequestRecord], error: BaseException | None) -> None:
        self.write_errors += len(records)
        ids = ", ".join(r.id for r in records[:3]) + (", ..." if len(records) > 3 else "")
        reason = self._scrub(f"{type(error).__name__}: {error}") if error is not None else "unknown error"
        log.error(
            "monitor store %s: %d request rows lost (%s): %s; %d lost so far",
            self.display, len(records), ids, reason, self.write_errors,
        )  # fmt: skip

    def _is_row_error(self, error: BaseException) -> bool:
        """True when the database refused the data (retrying the same rows cannot help)."""
        return isinstance(error, self._ROW_ERRORS)

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

    def _reader(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(conn, "closed", False):  # a PostgreSQL connection the server dropped
            with self._thread_lock:
                self._readers.remove(conn)
            conn = None
        if conn is None:
            if self._closed:
                raise RuntimeError(f"monitor store {self.display} is closed")
            conn = self._connect_reader()
            self._local.conn = conn
            with self._thread_lock:
                self._readers.append(conn)
        return conn

    def _read(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Mapping[str, Any]]:
        """Rows of a read; a connection the server dropped since the last read is reopened once."""
        try:
            conn = self._reader()
            rows = self._query(conn, sql, args)
            try:
                first = next(rows, None)
            except Exception:
                if not getattr(conn, "closed", False):
                    raise
                rows = self._query(self._reader(), sql, args)  # _reader() replaces the closed connection
                first = next(rows, None)
        except (StoreError, RuntimeError):
            raise
        except Exception as error:
            reason = " ".join(str(error).split())
            raise StoreError(f"Cannot read the monitor store {self.display}: {self._scrub(reason)}") from error
        if first is not None:
            yield first
            yield from rows


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


def open_store(config: Any, path: Path | str | None = None) -> MonitorStore:
    """The project's monitor store (or the one at ``path``: a file or a PostgreSQL URL), created if needed.

    A SQLite store inside the project's ``.llmops/`` gets that folder's self-ignoring
    ``.gitignore``, so the database never shows up as untracked work in git.
    """
    target: Path | str = store_location(config)
    if path is not None:
        target = str(path) if is_postgres_url(str(path)) else Path(path)
    if isinstance(target, Path):
        state = Path(config.root) / STATE_DIR
        if target.resolve().is_relative_to(state.resolve()):
            state.mkdir(parents=True, exist_ok=True)
            ignore = state / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# llmops state: content store, caches, indexes\n*\n")
    return MonitorStore(target)
